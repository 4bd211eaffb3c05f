"""The tracker settings, under the names and defaults of Ultralytics' `bytetrack.yaml`/`botsort.yaml`.

Ultralytics' trackers count `track_buffer` in updates, not seconds: a lost track is dropped after
that many processed frames whatever the video's frame rate or `vid_stride` (the installed
Ultralytics has no `frame_rate` argument any more), and so is it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TrackerName = Literal["bytetrack", "botsort"]
TRACKERS: tuple[TrackerName, ...] = ("bytetrack", "botsort")


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds shared by both trackers; `gmc_method` is BoT-SORT's camera-motion compensation."""

    track_high_thresh: float = 0.25  # detections at least this confident are matched first
    track_low_thresh: float = 0.1  # weaker ones above this are matched second, IoU only
    new_track_thresh: float = 0.25  # an unmatched detection this confident starts a track
    track_buffer: int = 30  # updates a lost track waits for its object before it is dropped
    match_thresh: float = 0.8  # the largest cost (1 - fused IoU) of a first-stage match
    fuse_score: bool = True  # weigh IoU by the detection score in the first stage
    gmc_method: Literal["sparseOptFlow", "none"] = "sparseOptFlow"  # BoT-SORT only
