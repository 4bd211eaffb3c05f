"""A tracker's whole state as plain arrays, and back: what a track session keeps between requests.

Sessions live in a store other processes write to (Redis), so the state is never pickled (loading
a pickle from a shared store runs whatever its writer chose): `dumps` writes named NumPy arrays
with `np.savez` and `loads` reads them with `allow_pickle=False`, checking each array's name,
dtype and shape. Every field a later update reads is kept (each track's Kalman state, detection
and counters; the tracker's frame count, next id and removed ids; BoT-SORT's previous grey frame
and corners), at its own dtype, so a restored tracker continues bit for bit where it stopped.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
from numpy.typing import NDArray

from postprocess.trackers.bot_sort import BotSort
from postprocess.trackers.byte_tracker import ByteTracker
from postprocess.trackers.config import TrackerConfig, TrackerName
from postprocess.trackers.strack import STrack, TrackState

# per-track arrays: name -> (dtype, shape after the track axis)
_TRACK_FIELDS: dict[str, tuple[type[np.generic], tuple[int, ...]]] = {
    "lost": (np.bool_, ()),  # which pool: tracked (False) or lost (True)
    "mean": (np.float64, (8,)),
    "covariance": (np.float64, (8, 8)),
    "tlwh": (np.float32, (4,)),
    "activated": (np.bool_, ()),
    "state": (np.int64, ()),
    "track_id": (np.int64, ()),
    "score": (np.float32, ()),
    "cls": (np.int64, ()),
    "idx": (np.int64, ()),
    "angle": (np.float64, ()),  # NaN for axis-aligned tracks
    "tracklet_len": (np.int64, ()),
    "frame_id": (np.int64, ()),
    "start_frame": (np.int64, ()),
}
_COUNTERS = ("tracker_frame_id", "tracker_next_id")


class StateError(ValueError):
    """The bytes are not a tracker state this code wrote."""


def export_state(tracker: ByteTracker) -> dict[str, NDArray[np.generic]]:
    """The tracker's state as named arrays (its config is not part of it: the caller keeps that)."""
    tracks = tracker.tracked + tracker.lost
    state: dict[str, NDArray[np.generic]] = {
        "lost": np.array([False] * len(tracker.tracked) + [True] * len(tracker.lost), np.bool_),
        "mean": np.array([t.mean for t in tracks], np.float64).reshape(-1, 8),
        "covariance": np.array([t.covariance for t in tracks], np.float64).reshape(-1, 8, 8),
        "tlwh": np.array([t._tlwh for t in tracks], np.float32).reshape(-1, 4),
        "activated": np.array([t.is_activated for t in tracks], np.bool_),
        "state": np.array([int(t.state) for t in tracks], np.int64),
        "track_id": np.array([t.track_id for t in tracks], np.int64),
        "score": np.array([t.score for t in tracks], np.float32),
        "cls": np.array([t.cls for t in tracks], np.int64),
        "idx": np.array([t.idx for t in tracks], np.int64),
        "angle": np.array([np.nan if t.angle is None else t.angle for t in tracks], np.float64),
        "tracklet_len": np.array([t.tracklet_len for t in tracks], np.int64),
        "frame_id": np.array([t.frame_id for t in tracks], np.int64),
        "start_frame": np.array([t.start_frame for t in tracks], np.int64),
        "removed": np.array(tracker.removed, np.int64),
        "tracker_frame_id": np.array(tracker.frame_id, np.int64),
        "tracker_next_id": np.array(tracker.next_id, np.int64),
    }
    gmc = getattr(tracker, "gmc", None)
    if gmc is not None and gmc.previous is not None:
        state["gmc_previous"] = gmc.previous
        if gmc.points is not None:
            state["gmc_points"] = gmc.points
    return state


def _track(tracker: ByteTracker, state: dict[str, NDArray[np.generic]], i: int) -> STrack:
    angle = float(state["angle"][i])
    oriented = not np.isnan(angle)
    tlwh = np.asarray(state["tlwh"][i], np.float32).copy()
    angle_or_none = np.float64(angle) if oriented else None
    track = tracker.track_kind(tlwh, state["score"][i], state["cls"][i], int(state["idx"][i]), angle_or_none)
    track.mean = np.asarray(state["mean"][i], np.float64).copy()
    track.covariance = np.asarray(state["covariance"][i], np.float64).copy()
    track.is_activated = bool(state["activated"][i])
    track.state = TrackState(int(state["state"][i]))
    track.track_id = int(state["track_id"][i])
    track.tracklet_len = int(state["tracklet_len"][i])
    track.frame_id = int(state["frame_id"][i])
    track.start_frame = int(state["start_frame"][i])
    track.next_id = tracker.new_id
    return track


def import_state(tracker: ByteTracker, state: dict[str, NDArray[np.generic]]) -> None:
    """Put `export_state`'s arrays back into a tracker of the same kind and config."""
    _check(state)
    tracker.reset()
    tracks = [_track(tracker, state, i) for i in range(len(state["track_id"]))]
    lost = state["lost"].tolist()
    tracker.tracked = [t for t, is_lost in zip(tracks, lost, strict=True) if not is_lost]
    tracker.lost = [t for t, is_lost in zip(tracks, lost, strict=True) if is_lost]
    tracker.removed = [int(i) for i in state["removed"].tolist()]
    tracker.frame_id = int(state["tracker_frame_id"])
    tracker.next_id = int(state["tracker_next_id"])
    gmc = getattr(tracker, "gmc", None)
    if gmc is not None and "gmc_previous" in state:
        gmc.previous = np.asarray(state["gmc_previous"], np.uint8).copy()
        gmc.points = np.asarray(state["gmc_points"], np.float32).copy() if "gmc_points" in state else None


def _check(state: dict[str, NDArray[np.generic]]) -> None:
    n = len(state.get("track_id", ()))
    for name, (dtype, shape) in _TRACK_FIELDS.items():
        array = state.get(name)
        if array is None or array.dtype != dtype or array.shape != (n, *shape):
            raise StateError(f"tracker state: {name} is missing or malformed")
    for name in _COUNTERS:
        if name not in state or state[name].dtype != np.int64 or state[name].shape != ():
            raise StateError(f"tracker state: {name} is missing or malformed")
    if "removed" not in state or state["removed"].dtype != np.int64 or state["removed"].ndim != 1:
        raise StateError("tracker state: removed is missing or malformed")
    previous, points = state.get("gmc_previous"), state.get("gmc_points")
    if previous is not None and (previous.dtype != np.uint8 or previous.ndim != 2):
        raise StateError("tracker state: gmc_previous is malformed")
    if points is not None and (points.dtype != np.float32 or points.ndim != 3 or points.shape[1:] != (1, 2)):
        raise StateError("tracker state: gmc_points is malformed")


def dumps(tracker: ByteTracker) -> bytes:
    """The state as an `.npz` archive (uncompressed: a few kB of floats, written every frame)."""
    buffer = io.BytesIO()
    np.savez(buffer, **export_state(tracker))  # type: ignore[arg-type]
    return buffer.getvalue()


def loads(data: bytes, name: TrackerName, config: TrackerConfig | None = None) -> ByteTracker:
    """A tracker of kind `name` and `config`, in the state `dumps` wrote; `StateError` otherwise."""
    tracker: ByteTracker = BotSort(config) if name == "botsort" else ByteTracker(config)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            state = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise StateError(f"tracker state: not a state archive ({exc})") from None
    import_state(tracker, state)
    return tracker
