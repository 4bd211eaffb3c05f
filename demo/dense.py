"""Seeded scenes for the dense-map demo models: a class map per pixel (semantic) and metres per pixel (depth).

The labels are exact by construction: the class map is the same polygons the image is painted with
(background 0, then `SHAPES` from 1), and the depth map is the geometry the image is rendered from
(a pinhole camera 1.6 m above a tiled ground plane, a far wall, and upright shapes standing on the ground
at chosen distances, each as big as its distance makes it). Written in the layouts Ultralytics' own
`SemanticDataset` (`masks/` PNGs of class ids) and `DepthDataset` (`depth/` uint16 PNGs, millimetres) read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import yaml
from numpy.typing import NDArray

from demo.generate import SHAPES, Points, background, draw_shape, outline, pick_colour, place, save_image

MapTask = Literal["semantic", "depth"]
MAP_TASKS: tuple[MapTask, ...] = ("semantic", "depth")
MAP_SIZE = 160  # small images: the maps are learnt at this size on the CPU
MAP_SPLITS: dict[str, tuple[int, int]] = {"train": (0, 1000), "val": (1, 100), "test": (2, 200)}
SEMANTIC_NAMES = ("background", *SHAPES)
CAMERA_HEIGHT = 1.6  # metres above the ground
FOCAL = float(MAP_SIZE)  # pixels: a 53 degree field of view
DEPTH_SCALE = 1000  # depth PNG value per metre (Ultralytics' default `depth_scale`)
MAX_DEPTH = 40.0  # metres; the far wall stands at 12-30 m

Image = NDArray[np.uint8]
Depth = NDArray[np.float32]


def _rng(task: MapTask, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([100 + MAP_TASKS.index(task), MAP_SPLITS[split][0], index])


def semantic_scene(split: str, index: int) -> tuple[Image, NDArray[np.uint8]]:
    """The BGR image and its class map (0 background, 1 + the index in `SHAPES`)."""
    rng = _rng("semantic", split, index)
    size = MAP_SIZE
    canvas = background(rng, size)
    classes = np.zeros((size, size), np.uint8)
    taken: list[tuple[Points, float]] = []
    for _ in range(int(rng.integers(1, 6))):
        radius = float(rng.uniform(12, 40))
        cls = int(rng.integers(len(SHAPES)))
        centre = place(rng, size, radius, taken)
        if centre is None:
            continue
        polygon = outline(SHAPES[cls], centre, radius, rng.uniform(0, 2 * math.pi))
        inside = canvas[
            int(max(centre[1] - radius, 0)) : int(centre[1] + radius) + 1,
            int(max(centre[0] - radius, 0)) : int(centre[0] + radius) + 1,
        ]
        draw_shape(canvas, polygon, pick_colour(rng, inside))
        cv2.fillPoly(classes, [np.round(polygon * 16).astype(np.int32)], cls + 1, cv2.LINE_8, shift=4)
    return _finish(rng, canvas), classes


def ground_depth(horizon: float, size: int = MAP_SIZE) -> Depth:
    """Depth (along the optical axis) of the ground plane at each pixel row; 0 at and above the horizon."""
    below = np.arange(size, dtype=np.float64) + 0.5 - horizon
    z = np.where(below > 0, FOCAL * CAMERA_HEIGHT / np.maximum(below, 1e-9), 0.0)
    return np.repeat(z[:, None], size, 1).astype(np.float32)


def depth_scene(split: str, index: int) -> tuple[Image, Depth]:
    """The BGR image and its depth in metres at every pixel (ground, wall or shape: none is without)."""
    rng = _rng("depth", split, index)
    size = MAP_SIZE
    horizon = float(rng.uniform(-0.15, 0.35) * size)  # the camera's tilt moves the horizon
    wall = float(rng.uniform(12, 30))  # a fronto-parallel wall closes the ground off
    depth = ground_depth(horizon)
    on_wall = (depth == 0) | (depth > wall)
    depth[on_wall] = wall
    xs = np.mgrid[0:size, 0:size][1].astype(np.float64) + 0.5
    z = depth.astype(np.float64)
    tile = float(
        rng.uniform(0.6, 1.5)
    )  # metres: the ground is a checkerboard, so its texture shrinks with distance
    ground_x = (xs - size / 2) * z / FOCAL
    checker = ((np.floor(ground_x / tile) + np.floor(z / tile)) % 2).astype(bool)
    a, b = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    image = np.where(checker[..., None], a, b)
    wall_colour = rng.uniform(0, 255, 3)
    stripes = 0.85 + 0.15 * np.sin(xs * 2 * math.pi / rng.uniform(6, 20))[..., None]
    image = np.where(on_wall[..., None], wall_colour * stripes, image)
    canvas = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    shapes = sorted(
        (float(rng.uniform(2.0, wall - 1.0)), int(rng.integers(len(SHAPES))))
        for _ in range(rng.integers(1, 6))
    )
    for distance, cls in reversed(shapes):  # far to near, so nearer shapes cover farther ones
        extent = float(rng.uniform(0.3, 0.9))  # metres from centre to tip
        radius = FOCAL * extent / distance
        base = horizon + FOCAL * CAMERA_HEIGHT / distance  # the row where it touches the ground
        centre = np.array([rng.uniform(0, size), base - radius])
        polygon = outline(SHAPES[cls], centre, radius, rng.uniform(-0.3, 0.3))
        draw_shape(canvas, polygon, pick_colour(rng, canvas))
        cv2.fillPoly(depth, [np.round(polygon * 16).astype(np.int32)], distance, cv2.LINE_8, shift=4)
    return _finish(rng, canvas), depth


def _finish(rng: np.random.Generator, canvas: Image) -> Image:
    """Sensor noise and, for half the images, a slight blur."""
    noise = rng.normal(0, rng.uniform(2, 8), canvas.shape)
    image = np.clip(canvas + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        image = np.asarray(cv2.GaussianBlur(image, (3, 3), 0), np.uint8)
    return image


def image_path(task: MapTask, root: Path, split: str, index: int) -> Path:
    return root / task / split / "images" / f"{index:05d}.jpg"


def label_path(task: MapTask, root: Path, split: str, index: int) -> Path:
    """Where Ultralytics looks for the map of an image: `images` replaced by `masks` or `depth`, as PNG."""
    return root / task / split / ("masks" if task == "semantic" else "depth") / f"{index:05d}.png"


def write_label(task: MapTask, path: Path, label: NDArray[np.uint8] | Depth) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    metres = np.asarray(label, np.float32)
    pixels = (
        label
        if task == "semantic"
        else np.round(np.clip(metres, 0, MAX_DEPTH) * DEPTH_SCALE).astype(np.uint16)
    )
    cv2.imwrite(str(path), pixels)


def scene(task: MapTask, split: str, index: int) -> tuple[Image, NDArray[np.uint8] | Depth]:
    return semantic_scene(split, index) if task == "semantic" else depth_scene(split, index)


def write_map_dataset(task: MapTask, root: Path) -> Path:
    """Write every split under `root/task` (complete splits are kept) and return the data YAML."""
    base = root / task
    for split, (_seed, count) in MAP_SPLITS.items():
        done = base / split / ".complete"
        if done.exists() and done.read_text() == str(count):
            continue
        for index in range(count):
            image, label = scene(task, split, index)
            save_image(image_path(task, root, split, index), image)
            write_label(task, label_path(task, root, split, index), label)
        done.write_text(str(count))
    data: dict[str, object] = {"path": str(base.resolve()), "train": "train/images", "val": "val/images"}
    if task == "semantic":
        data |= {"masks_dir": "masks", "names": dict(enumerate(SEMANTIC_NAMES))}
    else:
        data |= {"nc": 1, "names": {0: "depth"}, "depth_scale": DEPTH_SCALE, "max_depth": MAX_DEPTH}
    (base / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return base / "data.yaml"
