"""Association costs and the assignment, as Ultralytics' `trackers/utils/matching.py`.

Ultralytics solves every assignment with `lap.lapjv` (it installs `lap` at run time when it is
missing), so the port calls the same solver: another optimal solver could break a tie the other
way and hand an id to the other object.
"""

from __future__ import annotations

import lap
import numpy as np
from numpy.typing import NDArray

from postprocess.obb import probiou

Costs = NDArray[np.float32]


def linear_assignment(
    cost: NDArray[np.floating], thresh: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Matched `(row, column)` pairs costing less than `thresh`, then the unmatched rows and columns."""
    rows, cols = cost.shape
    if cost.size == 0:
        return [], list(range(rows)), list(range(cols))
    _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
    matches = [(int(i), int(j)) for i, j in enumerate(x) if j >= 0]
    return matches, np.where(x < 0)[0].tolist(), np.where(y < 0)[0].tolist()


def box_iou(a: NDArray[np.float32], b: NDArray[np.float32], eps: float = 1e-7) -> Costs:
    """Pairwise IoU `(n, m)` of `xyxy` boxes (`metrics.bbox_ioa(..., iou=True)`)."""
    a_x1, a_y1, a_x2, a_y2 = a.T
    b_x1, b_y1, b_x2, b_y2 = b.T
    inter = (np.minimum(a_x2[:, None], b_x2) - np.maximum(a_x1[:, None], b_x1)).clip(0) * (
        np.minimum(a_y2[:, None], b_y2) - np.maximum(a_y1[:, None], b_y1)
    ).clip(0)
    area = (b_x2 - b_x1) * (b_y2 - b_y1)
    union = area + ((a_x2 - a_x1) * (a_y2 - a_y1))[:, None] - inter
    return np.asarray(inter / (union + eps), dtype=np.float32)


def iou_distance(
    a: NDArray[np.floating] | list[NDArray[np.floating]], b: NDArray[np.floating] | list[NDArray[np.floating]]
) -> Costs:
    """`1 - IoU` between two sets of boxes: `xyxy` rows, or `xywhr` rows compared by ProbIoU."""
    ious = np.zeros((len(a), len(b)), dtype=np.float32)
    if len(a) and len(b):
        first = np.ascontiguousarray(a, dtype=np.float32)
        second = np.ascontiguousarray(b, dtype=np.float32)
        oriented = first.shape[1] == 5 and second.shape[1] == 5
        ious = probiou(first, second) if oriented else box_iou(first, second)
    return np.asarray(1 - ious, dtype=np.float32)


def fuse_score(cost: Costs, scores: NDArray[np.float32]) -> Costs:
    """Weigh each overlap by the detection's score, so a confident detection wins a tie."""
    if cost.size == 0:
        return cost
    fused = (1 - cost) * scores[None].repeat(cost.shape[0], axis=0)
    return np.asarray(1 - fused, dtype=np.float32)
