"""The examples detector's data: the project's own labels for the two images the Platform ships.

`bus.jpg` and `zidane.jpg` come with the `ultralytics` wheel. They were labelled by hand here
(COCO ids, pixel corners). The training set is the two images repeated (Ultralytics augments each
pass differently), composites that paste the labelled objects onto generated backgrounds, and
empty backgrounds. It is a demo fitted to these two images, not a general detector.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from numpy.typing import NDArray

from demo.generate import background

COCO_IDS = {"person": 0, "bus": 5, "tie": 27}
# (class, x0, y0, x1, y1) in pixels of the original image.
LABELS: dict[str, list[tuple[str, int, int, int, int]]] = {
    "bus.jpg": [
        ("bus", 18, 230, 806, 740),
        ("person", 50, 398, 245, 902),  # beige coat
        ("person", 221, 405, 345, 858),  # black coat
        ("person", 668, 385, 810, 878),  # walking out at the right edge
        ("person", 0, 552, 78, 872),  # cut by the left edge
    ],
    "zidane.jpg": [
        ("person", 120, 200, 1152, 720),  # Zidane, pointing arm included
        ("person", 750, 42, 1138, 720),  # Ancelotti
        ("tie", 443, 435, 524, 720),  # Zidane's tie (Ancelotti's is mostly hidden by the hand)
    ],
}
REPEATS, COMPOSITES, EMPTY, CANVAS = 40, 160, 24, 640

Box = tuple[int, float, float, float, float]  # class id, x0, y0, x1, y1


def example_images() -> dict[str, NDArray[np.uint8]]:
    from ultralytics.utils import ASSETS

    return {name: np.asarray(cv2.imread(str(ASSETS / name)), np.uint8) for name in LABELS}


def labelled(name: str) -> list[Box]:
    return [(COCO_IDS[c], float(x0), float(y0), float(x1), float(y1)) for c, x0, y0, x1, y1 in LABELS[name]]


def _yolo_lines(boxes: list[Box], width: int, height: int) -> str:
    return "".join(
        f"{c} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f}"
        f" {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}\n"
        for c, x0, y0, x1, y1 in boxes
    )


def _inside(boxes: list[Box], crop: tuple[int, int, int, int]) -> list[Box]:
    """The boxes mostly (>= 60 %) inside `crop`, clipped to it and moved to its origin."""
    cx0, cy0, cx1, cy1 = crop
    kept = []
    for c, x0, y0, x1, y1 in boxes:
        ix0, iy0, ix1, iy1 = max(x0, cx0), max(y0, cy0), min(x1, cx1), min(y1, cy1)
        if ix1 > ix0 and iy1 > iy0 and (ix1 - ix0) * (iy1 - iy0) >= 0.6 * (x1 - x0) * (y1 - y0):
            kept.append((c, ix0 - cx0, iy0 - cy0, ix1 - cx0, iy1 - cy0))
    return kept


def composite(
    rng: np.random.Generator, sources: dict[str, NDArray[np.uint8]]
) -> tuple[NDArray[np.uint8], list[Box]]:
    """A generated background with one to three labelled objects pasted at random scales."""
    canvas = background(rng, CANVAS)
    boxes: list[Box] = []
    names = sorted(sources)
    for _ in range(int(rng.integers(1, 4))):
        name = names[int(rng.integers(len(names)))]
        image, objects = sources[name], labelled(name)
        _, x0, y0, x1, y1 = objects[int(rng.integers(len(objects)))]
        crop = (int(x0), int(y0), int(x1), int(y1))
        patch = image[crop[1] : crop[3], crop[0] : crop[2]]
        scale = rng.uniform(0.3, 1.0) * min(1.0, CANVAS / max(patch.shape[:2]))
        patch = np.asarray(
            cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8
        )
        h, w = patch.shape[:2]
        ox, oy = int(rng.integers(0, CANVAS - w + 1)), int(rng.integers(0, CANVAS - h + 1))
        boxes = [b for b in boxes if not _covered(b, (ox, oy, ox + w, oy + h))]
        canvas[oy : oy + h, ox : ox + w] = patch
        for c, bx0, by0, bx1, by1 in _inside(objects, crop):
            boxes.append((c, ox + bx0 * scale, oy + by0 * scale, ox + bx1 * scale, oy + by1 * scale))
    return canvas, boxes


def _covered(box: Box, patch: tuple[int, int, int, int]) -> bool:
    """Whether a pasted patch hides more than 40 % of an earlier box (its label would lie)."""
    _, x0, y0, x1, y1 = box
    ix = max(0.0, min(x1, patch[2]) - max(x0, patch[0]))
    iy = max(0.0, min(y1, patch[3]) - max(y0, patch[1]))
    return ix * iy > 0.4 * (x1 - x0) * (y1 - y0)


def write_examples_dataset(root: Path) -> Path:
    """Write the examples data set under `root` (kept if complete) and return its data YAML."""
    from ultralytics.utils import ROOT

    done = root / ".complete"
    if not done.exists():
        sources = example_images()
        rng = np.random.default_rng(2024)
        for split in ("train", "val"):
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            (root / split / "labels").mkdir(parents=True, exist_ok=True)

        def put(split: str, stem: str, image: NDArray[np.uint8], boxes: list[Box]) -> None:
            cv2.imwrite(str(root / split / "images" / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            h, w = image.shape[:2]
            (root / split / "labels" / f"{stem}.txt").write_text(_yolo_lines(boxes, w, h))

        for name, image in sources.items():
            stem = name.removesuffix(".jpg")
            put("val", stem, image, labelled(name))
            for i in range(REPEATS):
                put("train", f"{stem}-{i:03d}", image, labelled(name))
        for i in range(COMPOSITES):
            put("train", f"composite-{i:03d}", *composite(rng, sources))
        for i in range(EMPTY):
            put("train", f"empty-{i:03d}", background(rng, CANVAS), [])
        done.write_text("ok")
    coco = yaml.safe_load((ROOT / "cfg" / "datasets" / "coco.yaml").read_text())["names"]
    data = {"path": str(root.resolve()), "train": "train/images", "val": "val/images", "names": coco}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root / "data.yaml"
