"""Pose: detections plus keypoints scaled to the image (Ultralytics `PosePredictor`)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from postprocess.boxes import scale_coords
from postprocess.detect import Detections, to_detections


def decode_keypoints(
    rows: NDArray[np.float32], kpt_shape: tuple[int, int], input_hw: tuple[int, int], orig_hw: tuple[int, int]
) -> tuple[Detections, NDArray[np.float32]]:
    """Rows `(n, 6 + K*D)` -> detections and keypoints `(n, K, D)` in image pixels.

    Only x and y are un-padded, scaled and clipped; the visibility channel stays the raw sigmoid.
    """
    kpts = rows[:, 6:].reshape(len(rows), *kpt_shape).astype(np.float32, copy=True)
    kpts[..., :2] = scale_coords(kpts[..., :2], input_hw, orig_hw)
    return to_detections(rows, input_hw, orig_hw), kpts
