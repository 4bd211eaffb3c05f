"""Oriented boxes: ProbIoU Fast-NMS and corner points, as Ultralytics' OBB predictor.

OBB NMS is not greedy: after sorting by score, box j survives iff no higher-scored box (kept
or not) overlaps it by more than `iou` (ProbIoU, a Gaussian Bhattacharyya overlap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from postprocess.boxes import scale_xywh
from postprocess.nms import MAX_NMS, MAX_WH, end2end_rows, raw_candidates

EPS = 1e-7


@dataclass(frozen=True)
class OrientedBoxes:
    """`xywhr (n, 5)`: centre, size and angle (radians, as the model gives it) in image pixels."""

    xywhr: NDArray[np.float32]
    conf: NDArray[np.float32]
    cls: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.conf)

    def corners(self) -> NDArray[np.float32]:
        """`(n, 4, 2)` corners p1..p4 (`xywhr2xyxyxyxy`), not clipped."""
        ctr, w, h, angle = self.xywhr[:, :2], self.xywhr[:, 2:3], self.xywhr[:, 3:4], self.xywhr[:, 4:5]
        cos, sin = np.cos(angle), np.sin(angle)
        v1 = np.concatenate([w / 2 * cos, w / 2 * sin], -1)
        v2 = np.concatenate([-h / 2 * sin, h / 2 * cos], -1)
        return np.stack([ctr + v1 + v2, ctr + v1 - v2, ctr - v1 - v2, ctr - v1 + v2], -2).astype(np.float32)


def _covariance(boxes: NDArray[np.float32]) -> tuple[NDArray[np.float32], ...]:
    a, b, angle = boxes[:, 2] ** 2 / 12, boxes[:, 3] ** 2 / 12, boxes[:, 4]
    cos, sin = np.cos(angle), np.sin(angle)
    cos2, sin2 = cos**2, sin**2
    return (
        np.asarray(a * cos2 + b * sin2, dtype=np.float32),
        np.asarray(a * sin2 + b * cos2, dtype=np.float32),
        np.asarray((a - b) * cos * sin, dtype=np.float32),
    )


def probiou(boxes: NDArray[np.float32], others: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
    """Pairwise ProbIoU `(n, m)` of `xywhr` boxes (`metrics.batch_probiou`)."""
    others = boxes if others is None else others
    x, y = boxes[:, 0:1], boxes[:, 1:2]
    x2, y2 = others[:, 0:1].T, others[:, 1:2].T
    a1, b1, c1 = (v[:, None] for v in _covariance(boxes))
    a2, b2, c2 = (v[None, :] for v in _covariance(others))
    eps = np.float32(EPS)
    denom = (a1 + a2) * (b1 + b2) - (c1 + c2) ** 2
    t1 = ((a1 + a2) * (y - y2) ** 2 + (b1 + b2) * (x - x2) ** 2) / (denom + eps) * np.float32(0.25)
    t2 = ((c1 + c2) * (x2 - x) * (y - y2)) / (denom + eps) * np.float32(0.5)
    det = np.clip(a1 * b1 - c1**2, 0, None) * np.clip(a2 * b2 - c2**2, 0, None)
    t3 = np.log(denom / (4 * np.sqrt(det) + eps) + eps) * np.float32(0.5)
    bd = np.clip(t1 + t2 + t3, eps, np.float32(100.0))
    hd = np.sqrt(1.0 - np.exp(-bd) + eps)
    return np.asarray(1 - hd, dtype=np.float32)


def fast_nms(
    boxes: NDArray[np.float32], scores: NDArray[np.float32], iou: float, block: int = 256
) -> NDArray[np.intp]:
    """Indices kept by Fast-NMS, in descending score order.

    Box j is dropped when any higher-scored box overlaps it by more than `iou`. The pairwise
    matrix is computed `block` rows at a time: at conf 0.001 an OBB head yields thousands of
    candidates, and the whole n x n matrix with its temporaries would take gigabytes.
    """
    order = np.argsort(-scores, kind="stable")
    ranked = boxes[order]
    n = len(ranked)
    suppressed = np.zeros(n, dtype=bool)
    for start in range(0, n, block):
        stop = min(start + block, n)
        overlap = probiou(ranked[start:stop], ranked[start:]) > iou
        rows = np.arange(start, stop)[:, None]
        cols = np.arange(start, n)[None, :]
        suppressed[start:] |= (overlap & (rows < cols)).any(axis=0)
    return order[~suppressed]


def select_obb_rows(
    output0: NDArray[np.float32], *, nc: int, end2end: bool, conf: float, iou: float, max_det: int = 300
) -> NDArray[np.float32]:
    """Rows `cx, cy, w, h, score, class, angle` in input pixels, best first."""
    if end2end:
        return end2end_rows(output0, conf, max_det)
    rows = raw_candidates(output0, nc, conf, rotated=True)
    if len(rows) > MAX_NMS:
        rows = rows[np.argsort(-rows[:, 4], kind="stable")[:MAX_NMS]]
    offset = rows[:, 5:6] * np.float32(MAX_WH)
    shifted = np.concatenate([rows[:, :2] + offset, rows[:, 2:4], rows[:, -1:]], 1)
    kept: NDArray[np.float32] = rows[fast_nms(shifted, rows[:, 4], iou)][:max_det]
    return kept


def to_oriented(
    rows: NDArray[np.float32], input_hw: tuple[int, int], orig_hw: tuple[int, int]
) -> OrientedBoxes:
    xywh = scale_xywh(rows[:, :4], input_hw, orig_hw)
    xywhr = np.concatenate([xywh, rows[:, -1:]], 1).astype(np.float32)
    return OrientedBoxes(xywhr, rows[:, 4].copy(), rows[:, 5].astype(np.int64))
