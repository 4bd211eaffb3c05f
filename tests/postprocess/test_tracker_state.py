"""A tracker saved and restored after every frame gives what an uninterrupted one gives, bit for bit.

Track sessions keep the tracker's state between requests (`postprocess.trackers.state`). A seeded
sequence of detections (objects that move, cross, vanish for a few frames and come back, with weak
and confident scores and stray boxes) runs through one tracker from start to end, and through a
tracker written to bytes and read back into a fresh one before each frame. Every frame's ids,
boxes, scores and classes must be equal, for both trackers, axis-aligned and oriented boxes.
BoT-SORT's camera-motion compensation reads the frames of a generated panning clip.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from postprocess.trackers import TRACKERS, TrackerName, make_tracker
from postprocess.trackers.state import StateError, dumps, loads
from tests.helpers.clips import write_clip

FRAMES = 60
Detections = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]


def sequence(oriented: bool, seed: int = 0) -> list[Detections]:
    """Seven objects bouncing in a 320 px frame, each missing now and then, plus stray weak boxes."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(40, 280, (7, 2))
    velocity = rng.uniform(-5, 5, (7, 2))
    size = rng.uniform(20, 60, (7, 2))
    angle = rng.uniform(0, np.pi, 7)
    classes = rng.integers(0, 3, 7)
    frames = []
    for _ in range(FRAMES):
        centre += velocity
        velocity[(centre < 20) | (centre > 300)] *= -1
        angle += 0.03
        seen = rng.random(7) > 0.15
        jitter = rng.normal(0, 1.0, (7, 2))
        xy, wh = centre[seen] + jitter[seen], size[seen]
        scores = rng.uniform(0.12, 0.95, seen.sum())
        cls = classes[seen]
        boxes = np.c_[xy, wh, angle[seen]] if oriented else np.c_[xy - wh / 2, xy + wh / 2]
        stray = rng.uniform(0, 300, (2, boxes.shape[1]))  # weak boxes that start nothing
        if oriented:
            stray[:, 2:4] = 15
            stray[:, 4] = 0.5
        else:
            stray[:, 2:] = stray[:, :2] + 15
        frames.append(
            (
                np.r_[boxes, stray].astype(np.float32),
                np.r_[scores, rng.uniform(0.1, 0.2, 2)].astype(np.float32),
                np.r_[cls, [0, 1]].astype(np.int64),
            )
        )
    return frames


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[NDArray[np.uint8]]:
    clip = write_clip("detect", tmp_path_factory.mktemp("state") / "pan.mp4", frames=FRAMES)
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while (read := capture.read())[0]:
        frames.append(np.asarray(read[1], np.uint8))
    capture.release()
    assert len(frames) == FRAMES
    return frames


@pytest.mark.parametrize("oriented", [False, True], ids=["boxes", "obb"])
@pytest.mark.parametrize("tracker", TRACKERS)
def test_a_restored_tracker_continues_as_if_never_stopped(
    images: list[NDArray[np.uint8]], tracker: TrackerName, oriented: bool
) -> None:
    whole = make_tracker(tracker)
    saved: bytes | None = None
    tracked = 0
    for n, ((boxes, scores, classes), image) in enumerate(zip(sequence(oriented), images, strict=True)):
        expected = whole.update(boxes, scores, classes, image)
        resumed = make_tracker(tracker) if saved is None else loads(saved, tracker)
        got = resumed.update(boxes, scores, classes, image)
        saved = dumps(resumed)
        for field in ("index", "track_id", "boxes", "score", "cls"):
            assert np.array_equal(getattr(got, field), getattr(expected, field)), f"frame {n}: {field}"
        assert got.pending == expected.pending, f"frame {n}"
        tracked += len(got)
    assert tracked >= 250, f"only {tracked} tracked boxes: the comparison proves little"
    assert whole.next_id > 8, "objects that vanished should have come back under new ids too"
    assert whole.removed, "some track should have ended, so that removal is carried over too"


def test_the_state_holds_the_motion_compensation(images: list[NDArray[np.uint8]]) -> None:
    tracker = make_tracker("botsort")
    boxes, scores, classes = sequence(False)[0]
    tracker.update(boxes, scores, classes, images[0])
    with np.load(io.BytesIO(dumps(tracker)), allow_pickle=False) as archive:
        assert archive["gmc_previous"].shape == (160, 160)
        assert archive["gmc_points"].shape[1:] == (1, 2)
        assert int(archive["tracker_frame_id"]) == 1


def _archive(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_a_foreign_state_is_refused_never_unpickled() -> None:
    """An archive holding objects (a pickle) is refused, as are bytes that are no archive and an
    archive whose arrays are not a tracker's."""
    good = make_tracker("bytetrack")
    good.update(*sequence(False)[0])
    state = dict(np.load(io.BytesIO(dumps(good)), allow_pickle=False))
    hostile = _archive(**{**state, "cls": np.array([Path("/")], dtype=object)})  # stored as a pickle
    with pytest.raises(StateError, match="not a state archive"):
        loads(hostile, "bytetrack")
    with pytest.raises(StateError):
        loads(b"not an archive", "bytetrack")
    with pytest.raises(StateError, match="mean"):
        loads(_archive(**{**state, "mean": state["mean"][:, :4]}), "bytetrack")
    with pytest.raises(StateError, match="tracker_next_id"):
        loads(_archive(**{k: v for k, v in state.items() if k != "tracker_next_id"}), "bytetrack")
