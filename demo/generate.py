"""Seeded generator of the shapes data sets the demo models learn from, in the Ultralytics format.

Every scene is drawn from a `numpy.random.Generator` seeded by (split, index), so any image can be
rebuilt alone and the held-out `test` split (its own seeds) never overlaps training. Shapes sit
on textured, noisy, cluttered backgrounds and never overlap, so their polygons are exact masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import yaml
from numpy.typing import NDArray

Task = Literal["detect", "segment", "pose", "obb", "classify"]
TASKS: tuple[Task, ...] = ("detect", "segment", "pose", "obb", "classify")
SHAPES = ("circle", "square", "triangle", "star")  # detect, segment and classify classes
OBB_NAMES = ("bar", "plate")  # long thin rectangles and squat ones
POSE_NAMES = ("pointer",)  # a narrow isosceles triangle: apex, then its base corners clockwise
KPT_NAMES = ("apex", "right", "left")
SIZES: dict[Task, int] = {"detect": 320, "segment": 320, "pose": 320, "obb": 320, "classify": 128}
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 800), "val": (1, 100), "test": (2, 200)}  # (seed, count)
CLASSIFY_SPLITS: dict[str, tuple[int, int]] = {"train": (0, 6000), "val": (1, 200), "test": (2, 400)}
TASK_SEED = {task: i for i, task in enumerate(TASKS)}

Points = NDArray[np.float64]


@dataclass
class Thing:
    """One drawn object: its class, outline and, for pose, its keypoints (pixels)."""

    cls: int
    polygon: Points
    keypoints: Points = field(default_factory=lambda: np.zeros((0, 2)))


def _rng(task: Task, split: str, index: int) -> np.random.Generator:
    seed = (CLASSIFY_SPLITS if task == "classify" else SPLITS)[split][0]
    return np.random.default_rng([TASK_SEED[task], seed, index])


def background(rng: np.random.Generator, size: int) -> NDArray[np.uint8]:
    """Two colours blended by low-frequency noise, plus lines, blobs and sensor noise."""
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    cells = int(rng.integers(2, 8))
    blend = cv2.resize(rng.random((cells, cells)), (size, size), interpolation=cv2.INTER_CUBIC)
    image = a * np.clip(blend, 0, 1)[..., None] + b * (1 - np.clip(blend, 0, 1)[..., None])
    canvas = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(0, 12))):  # clutter a detector must learn to ignore
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.7:
            cv2.line(
                canvas, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), colour, int(rng.integers(1, 4))
            )
        else:
            cv2.circle(canvas, (int(p1[0]), int(p1[1])), int(rng.integers(2, 6)), colour, -1)
    return canvas


def outline(kind: str, centre: Points, radius: float, angle: float, aspect: float = 1.0) -> Points:
    """The polygon of a shape: `radius` is half its extent, `aspect` stretches rectangles."""
    if kind == "circle":
        t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * radius
    elif kind in ("square", "rect"):
        half = (
            np.array([radius, radius / aspect]) / math.sqrt(2)
            if kind == "square"
            else np.array([radius, radius / aspect])
        )
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    elif kind == "triangle":
        t = np.array([-90, 30, 150]) * math.pi / 180
        pts = np.stack([np.cos(t), np.sin(t)], 1) * radius
    elif kind == "star":
        t = np.arange(10) * math.pi / 5 - math.pi / 2
        r = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
        pts = np.stack([np.cos(t) * r, np.sin(t) * r], 1)
    elif kind == "pointer":  # apex up, base corners at the bottom: a 36 degree apex
        pts = np.array([[0.0, -radius], [0.36 * radius, 0.75 * radius], [-0.36 * radius, 0.75 * radius]])
    else:
        raise ValueError(kind)
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(pts @ np.array([[c, s], [-s, c]]) + centre, np.float64)


def pick_colour(rng: np.random.Generator, near: NDArray[np.uint8]) -> tuple[int, int, int]:
    """A saturated colour far enough from the background under the shape to be seen."""
    for _ in range(50):
        hsv = np.array([[[rng.integers(0, 180), rng.integers(120, 256), rng.integers(90, 256)]]], np.uint8)
        colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
        if np.abs(colour - near.reshape(-1, 3).mean(0)).sum() > 120:
            break
    return int(colour[0]), int(colour[1]), int(colour[2])


def place(
    rng: np.random.Generator, size: int, radius: float, taken: list[tuple[Points, float]]
) -> Points | None:
    for _ in range(30):
        centre = rng.uniform(radius, size - radius, 2)
        if all(np.hypot(*(centre - c)) > radius + r + 2 for c, r in taken):
            taken.append((centre, radius))
            return centre
    return None


def draw_shape(canvas: NDArray[np.uint8], polygon: Points, colour: tuple[int, int, int]) -> None:
    cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], colour, cv2.LINE_AA, shift=4)


def scene(task: Task, split: str, index: int) -> tuple[NDArray[np.uint8], list[Thing]]:
    """Render image `index` of a split: the BGR image and its objects."""
    rng = _rng(task, split, index)
    size = SIZES[task]
    canvas = background(rng, size)
    things: list[Thing] = []
    taken: list[tuple[Points, float]] = []
    if task == "classify":
        cls = int(rng.integers(len(SHAPES)))
        radius = rng.uniform(0.25, 0.45) * size
        centre = rng.uniform(radius, size - radius, 2)
        polygon = outline(SHAPES[cls], centre, radius, rng.uniform(0, 2 * math.pi))
        draw_shape(canvas, polygon, pick_colour(rng, canvas))
        things.append(Thing(cls, polygon))
    else:
        for _ in range(int(rng.integers(1, 7))):
            radius = float(rng.uniform(12, 60))
            cls = int(rng.integers(len(names(task))))
            aspect = (rng.uniform(3.0, 4.5) if cls == 0 else rng.uniform(1.4, 1.8)) if task == "obb" else 1.0
            reach = radius * math.hypot(1, 1 / aspect) if task == "obb" else radius  # a rectangle's corner
            placed = place(rng, size, reach, taken)
            if placed is None:
                continue
            angle = rng.uniform(0, 2 * math.pi)
            if task == "obb":
                polygon = outline("rect", placed, radius, angle, aspect)
            elif task == "pose":
                polygon = outline("pointer", placed, radius, angle)
            else:
                polygon = outline(SHAPES[cls], placed, radius, angle)
            inside = canvas[
                int(max(placed[1] - radius, 0)) : int(placed[1] + radius) + 1,
                int(max(placed[0] - radius, 0)) : int(placed[0] + radius) + 1,
            ]
            draw_shape(canvas, polygon, pick_colour(rng, inside))
            things.append(Thing(cls, polygon, polygon.copy() if task == "pose" else np.zeros((0, 2))))
        if task == "pose":  # distractors: circles and squares that are not pointers
            for _ in range(int(rng.integers(0, 3))):
                radius = float(rng.uniform(10, 40))
                spot = place(rng, size, radius, taken)
                if spot is not None:
                    kind = ("circle", "square")[int(rng.integers(2))]
                    draw_shape(
                        canvas, outline(kind, spot, radius, rng.uniform(0, 6.3)), pick_colour(rng, canvas)
                    )
    noise = rng.normal(0, rng.uniform(2, 10), canvas.shape)
    image = np.clip(canvas + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        image = np.asarray(cv2.GaussianBlur(image, (3, 3), 0), np.uint8)
    return image, things


def label_lines(task: Task, things: list[Thing], size: int) -> list[str]:
    """Ultralytics label lines (normalised) for the objects of one image."""
    lines = []
    for t in things:
        poly = np.clip(t.polygon / size, 0, 1)
        (x0, y0), (x1, y1) = poly.min(0), poly.max(0)
        box = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
        if task == "detect":
            values = box
        elif task in ("segment", "obb"):  # the outline; Ultralytics fits the rotated box itself
            values = list(poly.ravel())
        else:  # pose: box, then x y visibility per keypoint
            kpts = np.clip(t.keypoints / size, 0, 1)
            values = box + [v for x, y in kpts for v in (x, y, 2.0)]
        lines.append(" ".join([str(t.cls), *(f"{v:.6f}" for v in values)]))
    return lines


def names(task: Task) -> tuple[str, ...]:
    return {"obb": OBB_NAMES, "pose": POSE_NAMES}.get(task, SHAPES)


def image_path(task: Task, root: Path, split: str, index: int, things: list[Thing]) -> Path:
    """Where image `index` of a split lives (classification sorts images into class folders)."""
    folder = SHAPES[things[0].cls] if task == "classify" else "images"
    return root / task / split / folder / f"{index:05d}.jpg"


def save_image(path: Path, image: NDArray[np.uint8]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92])


def write_dataset(task: Task, root: Path) -> Path:
    """Write every split of a task under `root/task` and return its data YAML (or folder, for classify).

    Existing complete splits are kept, so a rerun costs nothing."""
    base = root / task
    splits = CLASSIFY_SPLITS if task == "classify" else SPLITS
    for split, (_seed, count) in splits.items():
        done = base / split / ".complete"
        if done.exists() and done.read_text() == str(count):
            continue
        for index in range(count):
            image, things = scene(task, split, index)
            save_image(image_path(task, root, split, index, things), image)
            if task != "classify":
                label = base / split / "labels" / f"{index:05d}.txt"
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text("\n".join(label_lines(task, things, SIZES[task])) + "\n")
        done.write_text(str(count))
    if task == "classify":
        return base
    data: dict[str, object] = {
        "path": str(base.resolve()),
        "train": "train/images",
        "val": "val/images",
        "test": "test/images",
        "names": dict(enumerate(names(task))),
    }
    if task == "pose":
        data |= {"kpt_shape": [len(KPT_NAMES), 3], "flip_idx": [0, 2, 1], "kpt_names": {0: list(KPT_NAMES)}}
    (base / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return base / "data.yaml"
