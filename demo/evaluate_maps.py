"""Accuracy of the dense-map demo models on held-out scenes: mIoU (semantic) and AbsRel (depth).

The ground truth is re-rendered from `demo/dense.py`'s seeds (exact, never read back from files), and
the same code scores Trident's PNG answers and `YOLO(weights).predict()`'s maps.

- mIoU: one confusion matrix over every pixel of every image, then the IoU of each class (background
  included) that appears in the truth or the prediction, averaged.
- AbsRel: the mean of |predicted - true| / true over every pixel with a true depth (> 0); a pixel the
  model gave no depth (0) counts as an error of 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from demo.dense import MAP_SPLITS, SEMANTIC_NAMES, MapTask, image_path, scene
from demo.generate import save_image

Map = NDArray[np.uint8] | NDArray[np.float32]
MAP_THRESHOLDS: dict[MapTask, float] = {"semantic": 0.80, "depth": 0.10}
MAP_METRIC: dict[MapTask, str] = {"semantic": "mIoU (incl. background)", "depth": "AbsRel"}


def meets(task: MapTask, value: float) -> bool:
    """mIoU must reach its target, AbsRel stay at or under it."""
    return value >= MAP_THRESHOLDS[task] if task == "semantic" else value <= MAP_THRESHOLDS[task]


@dataclass
class MapScore:
    """Pixels gathered over a data set, scored at the end."""

    task: MapTask
    confusion: NDArray[np.int64] = field(
        default_factory=lambda: np.zeros((len(SEMANTIC_NAMES), len(SEMANTIC_NAMES)), np.int64)
    )
    relative_error: float = 0.0
    pixels: int = 0

    def add(self, truth: Map, predicted: Map) -> None:
        if truth.shape != predicted.shape:
            raise ValueError(f"map of shape {predicted.shape} for an image of {truth.shape}")
        if self.task == "semantic":
            n = len(SEMANTIC_NAMES)
            pred = np.where(predicted < n, predicted, 0).astype(
                np.int64
            )  # an unknown id is wrong, not a crash
            self.confusion += np.bincount(
                truth.astype(np.int64).ravel() * n + pred.ravel(), minlength=n * n
            ).reshape(n, n)
            return
        valid = truth > 0
        t, p = truth[valid].astype(np.float64), predicted[valid].astype(np.float64)
        self.relative_error += float((np.abs(p - t) / t).sum())
        self.pixels += int(valid.sum())

    def per_class(self) -> dict[str, float]:
        """IoU of each class seen in the truth or the prediction."""
        inter = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - inter
        return {SEMANTIC_NAMES[i]: float(inter[i] / union[i]) for i in range(len(union)) if union[i] > 0}

    def value(self) -> float:
        if self.task == "semantic":
            ious = list(self.per_class().values())
            return float(np.mean(ious)) if ious else 0.0
        return self.relative_error / self.pixels if self.pixels else float("inf")


def held_out_maps(task: MapTask, root: Path, limit: int | None = None) -> Iterator[tuple[Path, Map]]:
    """The held-out split's image files (where `write_map_dataset` puts them) with their exact maps."""
    count = MAP_SPLITS["test"][1]
    for index in range(count if limit is None else min(limit, count)):
        image, truth = scene(task, "test", index)
        path = image_path(task, root, "test", index)
        if not path.exists():
            save_image(path, image)
        yield path, truth


def evaluate_map(
    task: MapTask, root: Path, predict: Callable[[Path], Map], limit: int | None = None
) -> MapScore:
    """Score one source of maps on the held-out split."""
    score = MapScore(task)
    for path, truth in held_out_maps(task, root, limit):
        score.add(truth, predict(path))
    return score


def from_api_map(task: MapTask, body: dict[str, Any]) -> Map:
    """The map of a seed-format answer, decoded as a client does (16-bit depth PNGs: within max/65535)."""
    from pipeline.render_maps import decode_depth_png, decode_mask_png

    return decode_mask_png(body["semantic_mask"]) if task == "semantic" else decode_depth_png(body["depth"])


def from_result_map(task: MapTask, result: Any) -> Map:
    """The map of an Ultralytics `Results`."""
    data = (result.semantic_mask if task == "semantic" else result.depth).data
    return np.asarray(data.cpu().numpy() if hasattr(data, "cpu") else data)
