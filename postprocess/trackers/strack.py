"""One tracked object (Ultralytics' `BaseTrack`, `STrack` and `BOTrack`, without ReID features).

A track holds its Kalman state and the detection it last matched. Its state moves
New -> Tracked <-> Lost -> Removed; `is_activated` stays False for a track born after the first
frame until a second detection confirms it, and unconfirmed tracks are never reported.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from postprocess.trackers.kalman import Array, KalmanXYAH, KalmanXYWH


class TrackState(IntEnum):
    New = 0
    Tracked = 1
    Lost = 2
    Removed = 3


def _no_id() -> int:
    raise RuntimeError("a detection must be given its tracker's id counter before it is activated")


class STrack:
    """A ByteTrack track: the filter runs on `(x, y, w / h, h)`.

    Made from one detection (`fresh_tracks` makes a frame's at once): its box as `tlwh`
    (float32), its score and class, its row in the frame's detections, and the angle of an
    oriented box.
    """

    kalman: KalmanXYAH = KalmanXYAH()  # shared by every track of this kind, as `STrack.shared_kalman`
    filters_aspect = True  # the state holds `w / h` where BoT-SORT's holds `w`
    velocity_zeroed_when_lost: tuple[int, ...] = (7,)

    def __init__(
        self, tlwh: NDArray[np.float32], score: np.float32, cls: np.int64, idx: int, angle: np.float64 | None
    ) -> None:
        self._tlwh = tlwh
        self.mean: Array | None = None
        self.covariance: Array | None = None
        self.is_activated = False
        self.state = TrackState.New
        self.track_id = 0
        self.score = score
        self.cls = cls
        self.idx = idx
        self.angle = angle
        self.tracklet_len = 0
        self.frame_id = 0
        self.start_frame = 0
        self.next_id: Callable[[], int] = _no_id

    # --- geometry -------------------------------------------------------------------------
    def measurement(self, tlwh: NDArray[np.floating]) -> NDArray[np.floating]:
        """A `tlwh` box as this filter measures it: `(x, y, w / h, h)` or `(x, y, w, h)`."""
        ret = np.asarray(tlwh).copy()
        ret[:2] += ret[2:] / 2
        if self.filters_aspect:
            ret[2] /= ret[3]
        return ret

    @property
    def tlwh(self) -> NDArray[np.floating]:
        """Top-left corner, width and height: the filtered box, or the detection before any filter."""
        if self.mean is None:
            return self._tlwh.copy()
        ret = self.mean[:4].copy()
        if self.filters_aspect:
            ret[2] *= ret[3]
        ret[:2] -= ret[2:] / 2
        return ret

    @property
    def xyxy(self) -> NDArray[np.floating]:
        ret = self.tlwh
        ret[2:] += ret[:2]
        return ret

    @property
    def xywha(self) -> NDArray[np.floating]:
        """Centre, size and angle of an oriented track."""
        ret = np.asarray(self.tlwh).copy()
        ret[:2] += ret[2:] / 2
        assert self.angle is not None
        return np.concatenate([ret, [self.angle]])

    @property
    def box(self) -> NDArray[np.floating]:
        """What overlaps are computed on: `xywhr` for oriented tracks, `xyxy` otherwise."""
        return self.xyxy if self.angle is None else self.xywha

    # --- life cycle -----------------------------------------------------------------------
    def activate(self, frame_id: int) -> None:
        """Start a track on an unmatched detection (confirmed at once only on the first frame)."""
        self.track_id = self.next_id()
        self.mean, self.covariance = self.kalman.initiate(self.measurement(self._tlwh))
        self.tracklet_len = 0
        self.state = TrackState.Tracked
        if frame_id == 1:
            self.is_activated = True
        self.frame_id = frame_id
        self.start_frame = frame_id

    def re_activate(self, det: STrack, frame_id: int) -> None:
        """Take a lost track back on the detection it was matched to, keeping its id (its filter
        already corrected by `correct`)."""
        self.tracklet_len = 0
        self.state = TrackState.Tracked
        self.is_activated = True
        self.frame_id = frame_id
        self._take(det)

    def update(self, det: STrack, frame_id: int) -> None:
        """Follow a tracked object to the detection it was matched to (its filter already
        corrected by `correct`)."""
        self.frame_id = frame_id
        self.tracklet_len += 1
        self.state = TrackState.Tracked
        self.is_activated = True
        self._take(det)

    def _take(self, det: STrack) -> None:
        self.score = det.score
        self.cls = det.cls
        if self.angle is not None and det.angle is not None:  # the half turn nearest the track's angle
            self.angle = det.angle - np.pi * round((det.angle - self.angle) / np.pi)
        self.idx = det.idx

    def mark_lost(self) -> None:
        self.state = TrackState.Lost

    def mark_removed(self) -> None:
        self.state = TrackState.Removed

    @property
    def end_frame(self) -> int:
        return self.frame_id

    def __repr__(self) -> str:
        return f"OT_{self.track_id}_({self.start_frame}-{self.end_frame})"


class BOTrack(STrack):
    """A BoT-SORT track: the filter runs on `(x, y, w, h)` and a lost track stops growing."""

    kalman: KalmanXYAH = KalmanXYWH()
    filters_aspect = False
    velocity_zeroed_when_lost = (6, 7)


def fresh_tracks(
    kind: type[STrack], table: NDArray[np.float64], scores: NDArray[np.float32], classes: NDArray[np.int64]
) -> list[STrack]:
    """A frame's detections as fresh tracks of `kind`, from rows `(x, y, w, h, index)` or
    `(x, y, w, h, angle, index)` (float64: the centre box, its angle for oriented boxes, its row in
    the frame's detections). An oriented box is stored long side first (angle turned by pi/2 when
    `w < h`), as Ultralytics does; the geometry is Ultralytics' per-row arithmetic, on all rows."""
    if table.shape[1] == 6:
        turned = table[:, 2] < table[:, 3]
        table = table.copy()
        table[turned] = table[turned][:, [0, 1, 3, 2, 4, 5]] + np.array([0, 0, 0, 0, np.pi / 2, 0])
    tlwh = table[:, :4].copy()
    tlwh[:, 0] = table[:, 0] - table[:, 2] / 2
    tlwh[:, 1] = table[:, 1] - table[:, 3] / 2
    tlwh = tlwh.astype(np.float32)
    angles: list[np.float64 | None] = list(table[:, 4]) if table.shape[1] == 6 else [None] * len(table)
    rows = table[:, -1].astype(np.int64).tolist()
    return [
        kind(box, s, c, i, a) for box, s, c, i, a in zip(tlwh, scores, classes, rows, angles, strict=True)
    ]


def multi_predict(tracks: list[STrack]) -> None:
    """Move every track one frame ahead; a track not seen last frame keeps its size."""
    if not tracks:
        return
    kind = type(tracks[0])
    means = np.asarray([t.mean for t in tracks])
    covariances = np.asarray([t.covariance for t in tracks])
    for i, t in enumerate(tracks):
        if t.state != TrackState.Tracked:
            means[i][list(kind.velocity_zeroed_when_lost)] = 0
    means, covariances = kind.kalman.multi_predict(means, covariances)
    for t, mean, cov in zip(tracks, means, covariances, strict=True):
        t.mean, t.covariance = mean, cov


def correct(tracks: list[STrack], detections: list[STrack]) -> None:
    """Correct each track's filter with the detection it was matched to, all in one stacked
    update (each row as its own `kalman.update`: a Python call per track cost more than the
    arithmetic)."""
    if not tracks:
        return
    kind = type(tracks[0])
    measured = np.array([d._tlwh for d in detections], dtype=np.float32)  # a detection is unfiltered
    measured[:, :2] += measured[:, 2:] / 2
    if kind.filters_aspect:
        measured[:, 2] /= measured[:, 3]
    means = np.asarray([t.mean for t in tracks])
    covariances = np.asarray([t.covariance for t in tracks])
    means, covariances = kind.kalman.update_many(means, covariances, measured)
    for t, mean, cov in zip(tracks, means, covariances, strict=True):
        t.mean, t.covariance = mean, cov


def track_boxes(tracks: list[STrack]) -> NDArray[np.floating]:
    """Every track's `box` as one array, `(n, 4)` or `(n, 5)`: the properties' arithmetic on
    stacked rows (tracks either all filtered or all fresh detections)."""
    if not tracks:
        return np.zeros((0, 4), np.float32)
    filtered = tracks[0].mean is not None
    rows = np.array([t.mean[:4] if t.mean is not None else t._tlwh for t in tracks])
    if filtered:
        if type(tracks[0]).filters_aspect:
            rows[:, 2] *= rows[:, 3]
        rows[:, :2] -= rows[:, 2:] / 2  # the filtered state is centred; now rows are tlwh
    if tracks[0].angle is None:
        rows[:, 2:] += rows[:, :2]
        return rows
    rows[:, :2] += rows[:, 2:] / 2
    angles = np.array([t.angle for t in tracks], np.float64)[:, None]
    return np.concatenate([rows, angles], axis=1)
