"""Trident's NumPy ports of Ultralytics' ByteTrack and BoT-SORT (without ReID), free of torch.

`make_tracker(name, config)` gives one tracker per stream of frames; `update(boxes, scores,
classes, frame)` returns that frame's `Tracks`, and `shown` turns them into the rows, ids and
boxes `model.track()` would show. Tests hold every frame to Ultralytics' own answers.
"""

from __future__ import annotations

from postprocess.trackers.bot_sort import BotSort
from postprocess.trackers.byte_tracker import ByteTracker
from postprocess.trackers.config import TRACKERS, TrackerConfig, TrackerName
from postprocess.trackers.tracks import TrackedFrame, Tracks, shown

__all__ = [
    "TRACKERS",
    "BotSort",
    "ByteTracker",
    "TrackedFrame",
    "TrackerConfig",
    "TrackerName",
    "Tracks",
    "make_tracker",
    "shown",
]


def make_tracker(name: TrackerName, config: TrackerConfig | None = None) -> ByteTracker:
    """A fresh tracker of the named kind, with `botsort.yaml`'s or `bytetrack.yaml`'s defaults."""
    return BotSort(config) if name == "botsort" else ByteTracker(config)
