"""What one tracked frame gives, and which detections Ultralytics shows for it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Tracks:
    """The confirmed tracks a frame's update reports, in Ultralytics' order.

    `index` is each track's row in the detections given to `update`; `boxes` are the track's
    filtered box (`xyxy`, or `xywhr` for oriented boxes), which is what `model.track()` reports in
    place of the detection's box; `score` and `cls` are the matched detection's. `pending` says that
    a track was started on this frame but is not confirmed yet.
    """

    index: NDArray[np.int64]
    track_id: NDArray[np.int64]
    boxes: NDArray[np.float32]
    score: NDArray[np.float32]
    cls: NDArray[np.int64]
    pending: bool

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True)
class TrackedFrame:
    """The detections a tracked frame shows: `rows` of the detections, with ids and the track boxes.

    `track_id` and `boxes` are None when Ultralytics shows the detections untracked.
    """

    rows: NDArray[np.int64]
    track_id: NDArray[np.int64] | None
    boxes: NDArray[np.float32] | None


def shown(tracks: Tracks, detections: int, orig_hw: tuple[int, int]) -> TrackedFrame:
    """Apply `ultralytics/trackers/track.py`'s rule for a frame's results.

    With tracks, the frame shows their detections with ids and the track boxes (axis-aligned
    ones clipped to the image, as `Results.update` does). Without, it shows nothing while a new
    track waits to be confirmed, and otherwise every detection as it came, without ids.
    """
    if len(tracks):
        boxes = tracks.boxes.copy()
        if boxes.shape[1] == 4:
            h, w = orig_hw
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return TrackedFrame(tracks.index, tracks.track_id, boxes)
    if tracks.pending:
        return TrackedFrame(np.zeros(0, dtype=np.int64), None, None)
    return TrackedFrame(np.arange(detections, dtype=np.int64), None, None)
