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


NMS_BLOCK = 256  # candidates compared with each other at once (a block x block IoU matrix)


def _overlaps(
    boxes: NDArray[np.float32], areas: NDArray[np.float32], a: NDArray[np.intp], b: NDArray[np.intp]
) -> NDArray[np.float32]:
    """IoU of every box `a` with every box `b`, computed with the same float32 operations as
    the pairwise greedy loop (so decisions at the threshold are bit-identical)."""
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    w = np.minimum(x2[a, None], x2[b])  # each step in place: a matrix is large, fresh ones fault in
    w -= np.maximum(x1[a, None], x1[b])
    np.maximum(w, np.float32(0), out=w)
    h = np.minimum(y2[a, None], y2[b])
    h -= np.maximum(y1[a, None], y1[b])
    np.maximum(h, np.float32(0), out=h)
    inter = np.multiply(w, h, out=w)
    union = np.add(areas[a, None], areas[b], out=h)
    union -= inter
    overlap: NDArray[np.float32] = np.divide(inter, union, out=inter)
    return overlap


def nms(
    boxes: NDArray[np.float32], scores: NDArray[np.float32], iou: float, max_det: int
) -> NDArray[np.intp]:
    """Greedy NMS (torchvision semantics): indices kept, in descending score order.

    A box is suppressed when its IoU with a kept, higher-scored box is strictly above `iou`.
    Stops as soon as `max_det` boxes are kept, which gives the same first `max_det` indices.
    Exact greedy, computed blockwise: the best `NMS_BLOCK` remaining candidates are resolved among
    themselves from one IoU matrix, then everything below them that a kept box suppresses is
    dropped with a second matrix; a few NumPy calls per block instead of several per kept box.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep: list[NDArray[np.intp]] = []
    kept = 0
    while order.size and kept < max_det:
        block, rest = order[:NMS_BLOCK], order[NMS_BLOCK:]
        suppresses = _overlaps(boxes, areas, block, block) > iou  # NaN never suppresses
        suppressed = np.zeros(len(block), dtype=bool)
        local: list[int] = []
        for j in range(len(block)):
            if suppressed[j]:
                continue
            local.append(j)
            kept += 1
            if kept == max_det:
                break
            suppressed |= suppresses[j]
        winners = block[local]
        keep.append(winners)
        if rest.size and kept < max_det:
            rest = rest[~(_overlaps(boxes, areas, winners, rest) > iou).any(axis=0)]
        order = rest
    return np.concatenate(keep) if keep else np.zeros(0, dtype=np.intp)


def raw_candidates(
    pred: NDArray[np.float32], nc: int, conf: float, rotated: bool = False
) -> NDArray[np.float32]:
    """Rows `x1, y1, x2, y2, score, class, extra...` whose best class score is above `conf`.

    `pred` is one image's raw head output `(4 + nc + extra, anchors)` with xywh boxes; rotated
    (OBB) boxes stay `cx, cy, w, h` and their angle is the extra column. Only the kept columns'
    box and extra rows are copied, never the class scores (80 of the 84 rows for COCO).
    """
    scores = pred[4 : 4 + nc]
    best = scores.argmax(axis=0)  # the first maximum, as Ultralytics' `max(1)`
    best_score = np.take_along_axis(scores, best[None], axis=0)[0]
    keep = np.flatnonzero(best_score > conf)  # NaN never passes
    box = pred[:4, keep].T.astype(np.float32, copy=True)
    if not rotated:
        box = xywh_to_xyxy(box)
    extra = pred[4 + nc :, keep].T
    columns = [box, best_score[keep, None], best[keep, None].astype(np.float32), extra]
    rows: NDArray[np.float32] = np.concatenate(columns, 1, dtype=np.float32)
    return rows


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
