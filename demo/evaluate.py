"""Accuracy of the demo models on the held-out `test` split, through the REST API and in process.

The same images, the same ground truth (re-rendered from the generator's seeds, so exact) and the
same metric code score both sources: Trident's JSON and `YOLO(weights).predict()`. Any gap between
the two columns is accuracy lost between the checkpoint and the API.

Metrics, at IoU (or OKS) 0.5, AP by Ultralytics' `ap_per_class`: box mAP50 (detect), rotated-box
mAP50 with ProbIoU (obb), mask mAP50 on polygons rasterised at image size (segment), keypoint
OKS-mAP50 with Ultralytics' sigmas for non-COCO skeletons, 1/K each (pose), top-1 (classify).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from demo.generate import CLASSIFY_SPLITS, SHAPES, SIZES, SPLITS, Task, Thing, image_path, save_image, scene

THRESHOLDS: dict[Task, float] = {"detect": 0.90, "obb": 0.90, "segment": 0.85, "pose": 0.80, "classify": 0.95}
METRIC: dict[Task, str] = {
    "detect": "box mAP50",
    "obb": "OBB mAP50",
    "segment": "mask mAP50",
    "pose": "OKS mAP50",
    "classify": "top-1",
}
Array = NDArray[np.float64]


@dataclass
class Found:
    """One prediction, from either source, in original-image pixels."""

    cls: int
    conf: float
    box: Array  # x0 y0 x1 y1
    polygon: Array | None = None
    keypoints: Array | None = None  # (K, 2)
    xywhr: Array | None = None


@dataclass
class Score:
    """Matches gathered over a data set, scored at the end."""

    task: Task
    tp: list[bool] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)
    pred_cls: list[int] = field(default_factory=list)
    target_cls: list[int] = field(default_factory=list)
    top1: list[bool] = field(default_factory=list)

    def value(self) -> float:
        if self.task == "classify":
            return float(np.mean(self.top1))
        from ultralytics.utils.metrics import ap_per_class

        if not self.tp:
            return 0.0
        ap = ap_per_class(
            np.array(self.tp)[:, None],
            np.array(self.conf),
            np.array(self.pred_cls),
            np.array(self.target_cls),
        )[5]
        return float(ap[:, 0].mean())


def from_api(task: Task, predictions: list[dict[str, Any]]) -> list[Found]:
    """Trident's JSON predictions as `Found`s."""
    if task == "classify":  # by name: Ultralytics numbers class folders alphabetically, not as SHAPES does
        return [Found(SHAPES.index(p["class"]), p["confidence"], np.zeros(4)) for p in predictions]
    found = []
    for p in predictions:
        b = p.get("box", {})
        if task == "obb":
            corners = np.array([[b[f"x{i}"], b[f"y{i}"]] for i in range(1, 5)])
            o = p["obb"]
            xywhr = np.array([o["cx"], o["cy"], o["w"], o["h"], o["angle"]])
            found.append(Found(p["class_id"], p["confidence"], _bounds(corners), corners, xywhr=xywhr))
            continue
        box = np.array([b["x1"], b["y1"], b["x2"], b["y2"]]) if b else np.zeros(4)
        polygon = np.array(p["segments"], np.float64).reshape(-1, 2) if "segments" in p else None
        kpts = np.array([[k["x"], k["y"]] for k in p["keypoints"]]) if "keypoints" in p else None
        found.append(Found(p["class_id"], p["confidence"], box, polygon, kpts))
    return found


def from_result(task: Task, result: Any) -> list[Found]:
    """An Ultralytics `Results` as `Found`s (the polygons are the ones Ultralytics draws: `masks.xy`)."""
    if task == "classify":
        return [
            Found(SHAPES.index(result.names[int(c)]), float(s), np.zeros(4))
            for c, s in zip(result.probs.top5, result.probs.top5conf, strict=True)
        ]
    if task == "obb":
        o = result.obb
        return [
            Found(int(c), float(s), _bounds(corners), corners, xywhr=xywhr)
            for c, s, corners, xywhr in zip(
                o.cls.numpy(),
                o.conf.numpy(),
                o.xyxyxyxy.numpy().astype(np.float64),
                o.xywhr.numpy().astype(np.float64),
                strict=True,
            )
        ]
    boxes = result.boxes
    polygons = [np.asarray(p, np.float64) for p in result.masks.xy] if task == "segment" else None
    kpts = result.keypoints.xy.numpy().astype(np.float64) if task == "pose" else None
    return [
        Found(
            int(c),
            float(s),
            b.astype(np.float64),
            polygons[i] if polygons is not None else None,
            kpts[i] if kpts is not None else None,
        )
        for i, (c, s, b) in enumerate(
            zip(boxes.cls.numpy(), boxes.conf.numpy(), boxes.xyxy.numpy(), strict=True)
        )
    ]


def _bounds(points: Array) -> Array:
    return np.concatenate([points.min(0), points.max(0)])


def box_iou(a: Array, b: Array) -> Array:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
    return np.asarray(inter / (area_a[:, None] + area_b[None] - inter + 1e-9))


def _mask(polygon: Array | None, hw: tuple[int, int]) -> NDArray[np.bool_]:
    canvas = np.zeros(hw, np.uint8)
    if polygon is not None and len(polygon) >= 3:
        cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def similarity(task: Task, truth: list[Thing], found: list[Found], hw: tuple[int, int]) -> Array:
    """IoU (or OKS) of every ground truth (rows) with every prediction (columns)."""
    if task == "segment":
        t = np.stack([_mask(g.polygon, hw).ravel() for g in truth]).astype(np.float64)
        f = np.stack([_mask(p.polygon, hw).ravel() for p in found]).astype(np.float64)
        inter = t @ f.T
        return np.asarray(inter / (t.sum(1)[:, None] + f.sum(1)[None] - inter + 1e-9))
    if task == "obb":
        import torch
        from ultralytics.utils.metrics import batch_probiou
        from ultralytics.utils.ops import xyxyxyxy2xywhr

        corners = np.stack([g.polygon.ravel() for g in truth]).astype(np.float32)
        truth_xywhr = torch.as_tensor(xyxyxyxy2xywhr(corners))  # type: ignore[no-untyped-call, unused-ignore]
        found_xywhr = torch.tensor(
            np.stack([p.xywhr for p in found if p.xywhr is not None]), dtype=torch.float32
        )
        return np.asarray(batch_probiou(truth_xywhr, found_xywhr).numpy(), np.float64)
    boxes = np.stack([_bounds(g.polygon) for g in truth])
    if task == "pose":
        gt = np.stack([g.keypoints for g in truth])  # (N, K, 2)
        pred = np.stack([p.keypoints for p in found if p.keypoints is not None])  # (M, K, 2)
        area = (boxes[:, 2:] - boxes[:, :2]).prod(1) * 0.53
        sigma = np.ones(gt.shape[1]) / gt.shape[1]
        d = ((gt[:, None] - pred[None]) ** 2).sum(-1)  # (N, M, K)
        e = d / ((2 * sigma) ** 2 * (area[:, None, None] + 1e-7) * 2)
        return np.asarray(np.exp(-e).mean(-1))
    return box_iou(boxes, np.stack([p.box for p in found]))


def add(score: Score, truth: list[Thing], found: list[Found], hw: tuple[int, int]) -> None:
    """Match one image's predictions to its ground truth (greedy by confidence, same class, >= 0.5)."""
    if score.task == "classify":
        score.top1.append(bool(found) and found[0].cls == truth[0].cls)
        return
    score.target_cls += [g.cls for g in truth]
    if not found:
        return
    order = np.argsort([-p.conf for p in found], kind="stable")
    found = [found[i] for i in order]
    sim = similarity(score.task, truth, found, hw) if truth else np.zeros((0, len(found)))
    taken = np.zeros(len(truth), bool)
    for j, p in enumerate(found):
        candidates = [i for i, g in enumerate(truth) if not taken[i] and g.cls == p.cls and sim[i, j] >= 0.5]
        best = max(candidates, key=lambda i: sim[i, j], default=None)
        if best is not None:
            taken[best] = True
        score.tp.append(best is not None)
        score.conf.append(p.conf)
        score.pred_cls.append(p.cls)


def held_out(task: Task, root: Path, limit: int | None = None) -> Iterator[tuple[Path, list[Thing]]]:
    """The held-out split's image files (written where `write_dataset` puts them) with their exact
    ground truth."""
    count = (CLASSIFY_SPLITS if task == "classify" else SPLITS)["test"][1]
    for index in range(count if limit is None else min(limit, count)):
        image, things = scene(task, "test", index)
        path = image_path(task, root, "test", index, things)
        if not path.exists():
            save_image(path, image)
        yield path, things


def evaluate(
    task: Task, root: Path, predict: Callable[[Path], list[Found]], limit: int | None = None
) -> float:
    """Score one source of predictions on the held-out split."""
    score = Score(task)
    size = SIZES[task]
    for path, truth in held_out(task, root, limit):
        add(score, truth, predict(path), (size, size))
    return score.value()
