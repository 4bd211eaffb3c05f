"""BoT-SORT without ReID, as Ultralytics runs it (`trackers/bot_sort.py`, `with_reid: False`).

ByteTrack's matching with two changes: the filter runs on `(x, y, w, h)` (`BOTrack`), and the
tracks are moved by the camera's motion between frames (GMC) before they are matched. Without
ReID, BoT-SORT's costs are ByteTrack's (its proximity mask only gates appearance costs).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from numpy.typing import NDArray

from postprocess.trackers.byte_tracker import ByteTracker
from postprocess.trackers.config import TrackerConfig
from postprocess.trackers.gmc import SparseOptFlow, Warp
from postprocess.trackers.strack import BOTrack

log = logging.getLogger(__name__)


class BotSort(ByteTracker):
    """BoT-SORT ids for one stream; pass each frame's image to `update` for the motion compensation."""

    track_kind = BOTrack

    def __init__(self, config: TrackerConfig | None = None) -> None:
        config = config or TrackerConfig()
        self.gmc = SparseOptFlow() if config.gmc_method == "sparseOptFlow" else None
        super().__init__(config)

    def reset(self) -> None:
        super().reset()
        if self.gmc is not None:
            self.gmc.reset()

    def camera_motion(self, frame: NDArray[np.uint8]) -> Warp | None:
        if self.gmc is None:
            return None
        try:
            return self.gmc.apply(frame)
        except cv2.error as e:  # Ultralytics falls back to no motion on any failure
            log.warning("GMC failed, the tracks are not moved: %s", e)
            return np.eye(2, 3)
