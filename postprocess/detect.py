"""Decode a detection head's output into boxes in original-image pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from postprocess.boxes import scale_boxes
from postprocess.nms import class_aware_nms, end2end_rows, raw_candidates

MAX_DET = 300


@dataclass(frozen=True)
class Detections:
    """Axis-aligned detections of one image: `xyxy (n, 4)` in image pixels, `conf (n,)`, `cls (n,)`."""

    xyxy: NDArray[np.float32]
    conf: NDArray[np.float32]
    cls: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.conf)


def select_rows(
    output0: NDArray[np.float32], *, nc: int, end2end: bool, conf: float, iou: float, max_det: int = MAX_DET
) -> NDArray[np.float32]:
    """Rows `x1, y1, x2, y2, score, class, extra...` in model-input pixels, best first.

    `output0` is one image's head output without the batch axis: raw `(4 + nc + extra, anchors)`
    or, when `end2end` (from the metadata: `end2end or args.nms`, never the model's name),
    final rows `(max_det, 6 + extra)`.
    """
    if end2end:
        return end2end_rows(output0, conf, max_det)
    return class_aware_nms(raw_candidates(output0, nc, conf), iou, max_det)


def to_detections(
    rows: NDArray[np.float32], input_hw: tuple[int, int], orig_hw: tuple[int, int]
) -> Detections:
    boxes = scale_boxes(rows[:, :4], input_hw, orig_hw)
    return Detections(boxes, rows[:, 4].copy(), rows[:, 5].astype(np.int64))


def decode_detections(
    output0: NDArray[np.float32],
    *,
    nc: int,
    end2end: bool,
    conf: float,
    iou: float,
    input_hw: tuple[int, int],
    orig_hw: tuple[int, int],
    max_det: int = MAX_DET,
) -> Detections:
    """One image's `output0` to `Detections`, exactly as `DetectionPredictor`."""
    rows = select_rows(output0, nc=nc, end2end=end2end, conf=conf, iou=iou, max_det=max_det)
    return to_detections(rows, input_hw, orig_hw)
