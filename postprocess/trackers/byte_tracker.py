"""ByteTrack as Ultralytics runs it (`trackers/byte_tracker.py`), on plain arrays.

Each update matches the tracks to the frame's detections in three stages: confident detections
against every tracked and lost track (IoU weighed by score), the leftover tracked tracks against
the weak detections (IoU alone), and last frame's unconfirmed tracks against what is left. An
unmatched confident detection starts a track; a track lost for longer than `track_buffer`
updates is dropped. The order of every list is Ultralytics' own, since ids are handed out in it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from postprocess.trackers import matching
from postprocess.trackers.config import TrackerConfig
from postprocess.trackers.gmc import Warp, warp_tracks
from postprocess.trackers.strack import STrack, TrackState, correct, fresh_tracks, multi_predict, track_boxes
from postprocess.trackers.tracks import Tracks

REMOVED_KEPT = 1000  # removed tracks remembered, as `merge_track_pools(removed_buffer=...)`
DUPLICATE_COST = 0.15  # a tracked and a lost track this close are one object (IoU > 0.85)


def centre_boxes(boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    """`xyxy` to `xywh` (centre) exactly as `ops.xyxy2xywh`; `xywhr` rows pass through."""
    if boxes.shape[1] == 5:
        return boxes
    out = np.empty_like(boxes)
    out[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2
    out[:, 1] = (boxes[:, 1] + boxes[:, 3]) / 2
    out[:, 2] = boxes[:, 2] - boxes[:, 0]
    out[:, 3] = boxes[:, 3] - boxes[:, 1]
    return out


def _joint(a: list[STrack], b: list[STrack]) -> list[STrack]:
    ids = {t.track_id for t in a}
    return a + [t for t in b if t.track_id not in ids]


def _sub(a: list[STrack], b: list[STrack]) -> list[STrack]:
    ids = {t.track_id for t in b}
    return [t for t in a if t.track_id not in ids]


def _without_duplicates(a: list[STrack], b: list[STrack]) -> tuple[list[STrack], list[STrack]]:
    """Of two tracks on one object, keep the older (`stracks.remove_duplicate_stracks`)."""
    cost = matching.iou_distance(track_boxes(a), track_boxes(b))
    drop_a, drop_b = set(), set()
    for p, q in zip(*np.where(cost < DUPLICATE_COST), strict=True):
        if a[p].frame_id - a[p].start_frame > b[q].frame_id - b[q].start_frame:
            drop_b.add(int(q))
        else:
            drop_a.add(int(p))
    return [t for i, t in enumerate(a) if i not in drop_a], [t for i, t in enumerate(b) if i not in drop_b]


class ByteTracker:
    """Ids for one stream of frames; `update` once per processed frame, `reset` for a new stream."""

    track_kind: type[STrack] = STrack

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.reset()

    def reset(self) -> None:
        """Forget every track and start the ids again at 1, as for a new video."""
        self.tracked: list[STrack] = []
        self.lost: list[STrack] = []
        self.removed: list[int] = []  # ids only: a removed track is only ever told apart by its id
        self.frame_id = 0
        self.next_id = 1

    def new_id(self) -> int:
        given, self.next_id = self.next_id, self.next_id + 1
        return given

    def update(
        self,
        boxes: NDArray[np.float32],
        scores: NDArray[np.float32],
        classes: NDArray[np.int64],
        frame: NDArray[np.uint8] | None = None,
        *,
        warp: Warp | None = None,
    ) -> Tracks:
        """Track one frame's detections.

        `boxes` are `(n, 4)` `xyxy` or `(n, 5)` `xywhr` in image pixels (as Ultralytics' `Boxes` or
        `OBB`), `scores` and `classes` one per box; `frame` is the BGR image, used by BoT-SORT's
        camera-motion compensation only, or `warp` that compensation's answer for it, computed
        ahead by `camera_motion` (a video's decoding stage does that beside the model). Give every
        detection, down to the low threshold (`model.track()` predicts at `conf=0.1`).
        """
        self.frame_id += 1
        activated: list[STrack] = []
        refound: list[STrack] = []
        lost: list[STrack] = []
        removed: list[STrack] = []

        centred = centre_boxes(np.asarray(boxes, dtype=np.float32))
        scores = np.asarray(scores, dtype=np.float32)
        valid = (centred[:, 2] > 0) & (centred[:, 3] > 0)  # a zero height would divide by zero
        high = valid & (scores >= self.config.track_high_thresh)
        low = valid & (scores > self.config.track_low_thresh) & (scores < self.config.track_high_thresh)
        detections = self._detections(centred, scores, classes, high)
        weak = self._detections(centred, scores, classes, low)

        unconfirmed = [t for t in self.tracked if not t.is_activated]
        pool = _joint([t for t in self.tracked if t.is_activated], self.lost)
        multi_predict(pool)
        if warp is None and frame is not None:
            warp = self.camera_motion(frame)
        if warp is not None:
            warp_tracks(pool, warp)
            warp_tracks(unconfirmed, warp)

        cost = self._costs(pool, detections)
        matches, u_track, u_detection = matching.linear_assignment(cost, self.config.match_thresh)
        self._apply(matches, pool, detections, activated, refound)

        left = [pool[i] for i in u_track if pool[i].state == TrackState.Tracked]
        if left and weak:
            cost = matching.iou_distance(track_boxes(left), track_boxes(weak))
            matches, u_left, _ = matching.linear_assignment(cost, thresh=0.5)
            self._apply(matches, left, weak, activated, refound)
        else:
            u_left = list(range(len(left)))
        for i in u_left:
            left[i].mark_lost()
            lost.append(left[i])

        detections = [detections[i] for i in u_detection]
        if unconfirmed:
            cost = self._costs(unconfirmed, detections)
            matches, u_unconfirmed, u_detection = matching.linear_assignment(cost, thresh=0.7)
            correct([unconfirmed[it] for it, _ in matches], [detections[idet] for _, idet in matches])
            for it, idet in matches:
                unconfirmed[it].update(detections[idet], self.frame_id)
                activated.append(unconfirmed[it])
            for it in u_unconfirmed:
                unconfirmed[it].mark_removed()
                removed.append(unconfirmed[it])
        else:
            u_detection = list(range(len(detections)))

        for i in u_detection:
            if detections[i].score >= self.config.new_track_thresh:
                detections[i].activate(self.frame_id)
                activated.append(detections[i])
        for track in self.lost:
            if self.frame_id - track.end_frame > self.config.track_buffer:
                track.mark_removed()
                removed.append(track)

        self._merge(activated, refound, lost, removed)
        return self._report()

    def _detections(
        self,
        centred: NDArray[np.float32],
        scores: NDArray[np.float32],
        classes: NDArray[np.int64],
        mask: NDArray[np.bool_],
    ) -> list[STrack]:
        rows = np.flatnonzero(mask)
        table = np.concatenate([centred[rows], rows.reshape(-1, 1)], axis=-1)  # float64, as `parse_bboxes`
        found = fresh_tracks(self.track_kind, table, scores[rows], classes[rows])
        for track in found:
            track.next_id = self.new_id
        return found

    def camera_motion(self, frame: NDArray[np.uint8]) -> Warp | None:
        """The warp that moves the tracks with the camera from the last frame to `frame`, or None:
        ByteTrack does not compensate. Call it once per frame, in order (it keeps the last frame)."""
        return None

    def _costs(self, tracks: list[STrack], detections: list[STrack]) -> matching.Costs:
        cost = matching.iou_distance(track_boxes(tracks), track_boxes(detections))
        if self.config.fuse_score:
            cost = matching.fuse_score(cost, np.array([d.score for d in detections]))
        return cost

    def _apply(
        self,
        matches: list[tuple[int, int]],
        tracks: list[STrack],
        detections: list[STrack],
        activated: list[STrack],
        refound: list[STrack],
    ) -> None:
        correct([tracks[it] for it, _ in matches], [detections[idet] for _, idet in matches])
        for it, idet in matches:
            track, det = tracks[it], detections[idet]
            if track.state == TrackState.Tracked:
                track.update(det, self.frame_id)
                activated.append(track)
            else:
                track.re_activate(det, self.frame_id)
                refound.append(track)

    def _merge(
        self, activated: list[STrack], refound: list[STrack], lost: list[STrack], removed: list[STrack]
    ) -> None:
        """End-of-frame bookkeeping, step for step as `stracks.merge_track_pools`.

        A track removed on this frame is only taken out of the lost pool on the next one (it is
        still matched against once more), as in Ultralytics.
        """
        tracked = [t for t in self.tracked if t.state == TrackState.Tracked]
        tracked = _joint(_joint(tracked, activated), refound)
        still_lost = _sub(self.lost, tracked) + lost
        gone = set(self.removed)
        still_lost = [t for t in still_lost if t.track_id not in gone]
        self.tracked, self.lost = _without_duplicates(tracked, still_lost)
        self.removed = (self.removed + [t.track_id for t in removed])[-REMOVED_KEPT:]

    def _report(self) -> Tracks:
        shown = [t for t in self.tracked if t.is_activated]
        width = 4 if not shown or shown[0].angle is None else 5
        return Tracks(
            index=np.array([t.idx for t in shown], dtype=np.int64),
            track_id=np.array([t.track_id for t in shown], dtype=np.int64),
            boxes=np.asarray(track_boxes(shown), dtype=np.float32).reshape(-1, width),
            score=np.array([t.score for t in shown], dtype=np.float32),
            cls=np.array([t.cls for t in shown], dtype=np.int64),
            pending=any(not t.is_activated for t in self.tracked),
        )
