"""Non-maximum suppression as Ultralytics `utils/nms.py` does it, in NumPy.

Two entry points: `raw_candidates` + `nms` for one-to-many heads (YOLOv8/11, and YOLO26/v10
exported with the default `nms=None`), and `end2end_rows` for NMS-free or NMS-inside heads.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from postprocess.boxes import xywh_to_xyxy

MAX_WH = 7680  # per-class coordinate offset that keeps classes apart in one NMS pass
MAX_NMS = 30000  # candidates kept (by score) before NMS


def nms(
    boxes: NDArray[np.float32], scores: NDArray[np.float32], iou: float, max_det: int
) -> NDArray[np.intp]:
    """Greedy NMS (torchvision semantics): indices kept, in descending score order.

    A box is suppressed when its IoU with a kept, higher-scored box is strictly above `iou`.
    Stops as soon as `max_det` boxes are kept, which gives the same first `max_det` indices.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), np.float32(0))
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), np.float32(0))
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(overlap > iou)]  # NaN (degenerate boxes) never suppresses, as in torchvision
    return np.asarray(keep, dtype=np.intp)


def raw_candidates(
    pred: NDArray[np.float32], nc: int, conf: float, rotated: bool = False
) -> NDArray[np.float32]:
    """Rows `x1, y1, x2, y2, score, class, extra...` whose best class score is above `conf`.

    `pred` is one image's raw head output `(4 + nc + extra, anchors)` with xywh boxes; rotated
    (OBB) boxes stay `cx, cy, w, h` and their angle is the extra column.
    """
    scores = pred[4 : 4 + nc]
    keep = scores.max(axis=0) > conf
    x = pred[:, keep].T.astype(np.float32, copy=True)
    if not rotated:
        x[:, :4] = xywh_to_xyxy(x[:, :4])
    cls_scores = x[:, 4 : 4 + nc]
    best = cls_scores.argmax(axis=1)
    best_score = cls_scores[np.arange(len(x)), best]
    rows = np.concatenate(
        [x[:, :4], best_score[:, None], best[:, None].astype(np.float32), x[:, 4 + nc :]], 1
    )
    kept: NDArray[np.float32] = rows[best_score > conf]
    return kept


def class_aware_nms(rows: NDArray[np.float32], iou: float, max_det: int) -> NDArray[np.float32]:
    """NMS per class in one pass (boxes shifted by class * 7680), as Ultralytics does."""
    if len(rows) > MAX_NMS:
        rows = rows[np.argsort(-rows[:, 4], kind="stable")[:MAX_NMS]]
    shifted = rows[:, :4] + rows[:, 5:6] * np.float32(MAX_WH)
    return rows[nms(shifted, rows[:, 4], iou, max_det)]


def end2end_rows(pred: NDArray[np.float32], conf: float, max_det: int) -> NDArray[np.float32]:
    """Rows of an NMS-free / NMS-inside output `(max_det, 6 + extra)`: keep score > conf, in order."""
    rows: NDArray[np.float32] = pred[pred[:, 4] > conf][:max_det].astype(np.float32)
    return rows
