"""A video's frames through a tracker: each frame's `Result` as `model.track()` shows it.

One `VideoTracking` per request follows the processed frames in order (`update` must see them
in the video's order, one at a time). A tracked frame shows the detections of its confirmed
tracks, with their ids and the tracker's filtered boxes (not the detections' boxes), and their
masks, keypoints, scores and classes as detected; a frame without tracks shows its detections
untracked (`track_id` None), or none while a new track waits to be confirmed
(`postprocess.trackers.shown`). BoT-SORT's motion compensation reads each frame's image: it is
computed where the frame is decoded (`camera_motion`, in frame order, beside the model's work on
earlier frames), and `step` gets only its warp.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from pipeline.contract import PredictOptions
from pipeline.result import Result
from postprocess.obb import OrientedBoxes
from postprocess.trackers import make_tracker, shown
from postprocess.trackers.gmc import Warp
from postprocess.trackers.state import dumps, loads

__all__ = ["VideoTracking", "Warp"]  # `Warp`: what the serving path hands from decoding to `step`


class VideoTracking:
    """One video's tracker, and the ids it has shown, by class; or a track session's, resumed from
    the state its last frame left (`state`, `dumps`)."""

    def __init__(self, options: PredictOptions, state: bytes | None = None) -> None:
        config = options.tracker_config()
        self.tracker = (
            make_tracker(options.tracker, config) if state is None else loads(state, options.tracker, config)
        )
        self.name = options.tracker
        self.seen: dict[int, set[int]] = {}

    def camera_motion(self, image: NDArray[np.uint8]) -> Warp | None:
        """The camera's motion onto this BGR frame, for its `step` (None for ByteTrack); once per
        frame, in the frames' order."""
        return self.tracker.camera_motion(image)

    def step(self, result: Result, warp: Warp | None) -> Result:
        """The next frame's detections (every one down to `conf`) as `model.track()` shows them;
        `warp` is `camera_motion` of its image."""
        oriented = result.xywhr is not None
        boxes = result.xywhr if result.xywhr is not None else result.xyxy
        tracks = self.tracker.update(boxes, result.conf, result.cls, warp=warp)
        view = shown(tracks, len(result), result.orig_hw)
        rows = view.rows
        kept = replace(
            result,
            cls=result.cls[rows],
            conf=result.conf[rows],
            xyxy=result.xyxy if oriented else result.xyxy[rows],
            polygons=None if result.polygons is None else [result.polygons[i] for i in rows.tolist()],
            keypoints=None if result.keypoints is None else result.keypoints[rows],
            xywhr=None if result.xywhr is None else result.xywhr[rows],
            corners=None if result.corners is None else result.corners[rows],
        )
        if view.track_id is None or view.boxes is None:
            return kept
        for c, i in zip(kept.cls.tolist(), view.track_id.tolist(), strict=True):
            self.seen.setdefault(c, set()).add(i)
        if oriented:
            turned = OrientedBoxes(view.boxes, kept.conf, kept.cls)
            return replace(kept, xywhr=view.boxes, corners=turned.corners(), track_id=view.track_id)
        return replace(kept, xyxy=view.boxes, track_id=view.track_id)

    def dumps(self) -> bytes:
        """The tracker's state, for the next frame of a track session (no pickle)."""
        return dumps(self.tracker)

    def counts(self) -> dict[int, int]:
        """Distinct ids shown so far, by class id (a track whose class changed counts in each)."""
        return {c: len(ids) for c, ids in sorted(self.seen.items())}
