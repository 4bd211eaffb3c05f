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
    """One image's `output0` (without batch axis) to `Detections`, exactly as `DetectionPredictor`.

    `end2end` comes from the model metadata (`end2end or args.nms`), never from its name.
    """
    if end2end:
        rows = end2end_rows(output0, conf, max_det)
    else:
        rows = class_aware_nms(raw_candidates(output0, nc, conf), iou, max_det)
    boxes = scale_boxes(rows[:, :4], input_hw, orig_hw)
    return Detections(boxes, rows[:, 4].copy(), rows[:, 5].astype(np.int64))
