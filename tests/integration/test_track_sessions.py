"""Track sessions through the real stack: frames sent one at a time get `model.track()`'s ids.

The demo detect model is served by the session's stack; the frames of a generated clip
(`tests.helpers.clips`) go one by one, as PNG, with `track_session=<id>`, and through
`YOLO(<the exported onnx>).track(frame, persist=True, tracker=..., conf=0.1, iou=0.45)` on the
same frames. Every frame must show the same rows with the same ids and boxes (the
`test_track_video` comparison), with hundreds of tracked boxes. Then: two keys' sessions of one
name never mix; two frontends on one real `redis-server`, taking turns on one session, give one
frontend's ids; and on those frontends (small limits) the bound evicts the least recently used
session with a header and a 410, the idle timeout gives a 410, DELETE frees the id, changed
options are a 409, and a video or a bad id are 400s (a classify model's 400 is
`tests/pipeline/test_tracking.py`'s `track_refusal`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from ultralytics import YOLO

from demo.models import weights
from demo.train import RECIPES
from tests.helpers.clips import write_clip
from tests.helpers.stack import Stack, assert_error, free_port, start_redis
from tests.integration.test_track_video import DETECT, IOU, MODELS, assert_same_tracks
from trident import runtime

pytestmark = pytest.mark.integration
FRAMES = 40
MIN_TRACKED = 200  # of the 40 frames' 7 objects
IDLE_S, PER_KEY = 2, 2  # the Redis frontends' limits


@pytest.fixture(scope="module")
def onnx(stack: Stack) -> Path:
    """The demo detect model's ONNX, served by the stack (exported once, whoever asks first)."""
    recipe = RECIPES[MODELS[DETECT]]
    if DETECT not in stack.exported:
        stack.export(weights(recipe), DETECT, imgsz=recipe.imgsz)
    stack.wait_model(DETECT, timeout_s=120)
    return stack.exported[DETECT].path / "model.onnx"


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray[Any, Any]]:
    clip = write_clip("detect", tmp_path_factory.mktemp("session-clip") / "detect.mp4", frames=FRAMES)
    capture = cv2.VideoCapture(str(clip))
    images = []
    while (read := capture.read())[0]:
        images.append(read[1])
    capture.release()
    assert len(images) == FRAMES
    return images


def png(image: np.ndarray[Any, Any]) -> bytes:
    return bytes(cv2.imencode(".png", image)[1])


_REFERENCES: dict[str, list[Any]] = {}


def reference(onnx: Path, frames: list[np.ndarray[Any, Any]], tracker: str) -> list[Any]:
    """`model.track(frame, persist=True)` frame after frame (computed once per tracker)."""
    if tracker not in _REFERENCES:
        model = YOLO(str(onnx), task="detect")
        _REFERENCES[tracker] = [
            model.track(f, persist=True, tracker=f"{tracker}.yaml", conf=0.1, iou=IOU, verbose=False)[0]
            for f in frames
        ]
    return _REFERENCES[tracker]


def send(
    base: str, key: str, image: np.ndarray[Any, Any], session: str, slug: str = DETECT, **data: object
) -> httpx.Response:
    return httpx.post(
        f"{base}/api/models/{slug}/predict",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("frame.png", png(image))},
        data={"track_session": session, **{k: str(v) for k, v in data.items()}},
        timeout=60,
    )


def ids(body: dict[str, Any]) -> list[int] | None:
    preds = body["predictions"]
    return [p["track_id"] for p in preds] if preds and "track_id" in preds[0] else None


def session_frames(responses: list[httpx.Response], session: str) -> list[dict[str, Any]]:
    """The answers as `assert_same_tracks` reads a video's frames; each says its session and number."""
    out = []
    for n, r in enumerate(responses):
        assert r.status_code == 200, r.text
        assert r.headers["Trident-Track-Session"] == session
        assert r.headers["Trident-Track-Frame"] == str(n + 1)
        out.append({"frame": n, "predictions": r.json()["predictions"]})
    return out


@pytest.mark.parametrize("tracker", ["bytetrack", "botsort"])
def test_frames_one_at_a_time_get_the_ids_of_model_track(
    stack: Stack, onnx: Path, frames: list[np.ndarray[Any, Any]], tracker: str
) -> None:
    session = f"cam-{tracker}"
    with ThreadPoolExecutor(1) as pool:  # Ultralytics computes while the API answers (2 cores)
        expected = pool.submit(reference, onnx, frames, tracker)
        answers = [send(stack.base_url, stack.api_key, f, session, tracker=tracker) for f in frames]
        refs = expected.result()
    count = assert_same_tracks(DETECT, session_frames(answers, session), refs, 1)
    assert count >= MIN_TRACKED, f"only {count} tracked boxes: the comparison proves little"
    listed = httpx.get(
        f"{stack.base_url}/api/track-sessions", headers={"Authorization": f"Bearer {stack.api_key}"}
    ).json()["sessions"]
    [mine] = [s for s in listed if s["id"] == session]
    assert (mine["model"], mine["tracker"], mine["frames"]) == (DETECT, tracker, FRAMES)
    assert 0 < mine["idleSecondsLeft"] <= 60 and mine["createdAt"].endswith("Z")
    metrics = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in httpx.get(f"{stack.base_url}/metrics").text.splitlines()
        if line.startswith("trident_track")
    }
    assert metrics["trident_track_sessions_active"] >= 1
    assert metrics[f'trident_tracked_frames_total{{model="{DETECT}",tracker="{tracker}"}}'] >= FRAMES
    assert metrics["trident_track_step_seconds_count"] >= FRAMES
    r = httpx.delete(
        f"{stack.base_url}/api/track-sessions/{session}", headers={"Authorization": f"Bearer {stack.api_key}"}
    )
    assert r.status_code == 204


def test_two_keys_sessions_of_one_name_never_mix(
    stack: Stack, onnx: Path, frames: list[np.ndarray[Any, Any]]
) -> None:
    other = stack.create_key("someone-else", "test")
    refs = reference(onnx, frames, "bytetrack")[:10]
    mine, theirs = [], []
    for f in frames[:10]:  # interleaved: one tracker for both would see every frame twice
        mine.append(send(stack.base_url, stack.api_key, f, "shared", tracker="bytetrack"))
        theirs.append(send(stack.base_url, other, f, "shared", tracker="bytetrack"))
    for answers in (mine, theirs):
        assert_same_tracks(DETECT, session_frames(answers, "shared"), refs, 1)
    for key in (stack.api_key, other):
        httpx.delete(
            f"{stack.base_url}/api/track-sessions/shared", headers={"Authorization": f"Bearer {key}"}
        )


@pytest.fixture(scope="module")
def replicas(stack: Stack, onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two frontends sharing one real `redis-server`, with small session limits."""
    folder = tmp_path_factory.mktemp("session-replicas")
    port = free_port()
    server = start_redis(port, folder)
    env = {
        "TRIDENT_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "TRIDENT_TRACK_SESSION_IDLE_S": str(IDLE_S),
        "TRIDENT_TRACK_SESSIONS_PER_KEY": str(PER_KEY),
    }
    started = []
    try:
        for name in ("a", "b"):
            started.append(stack.spawn_frontend(folder / f"{name}.log", **env))
        yield [base for _, base in started]
    finally:
        for process, _ in started:
            runtime.stop(process)
        server.terminate()
        server.wait()


def test_two_replicas_taking_turns_give_one_frontends_ids(
    stack: Stack, onnx: Path, frames: list[np.ndarray[Any, Any]], replicas: list[str]
) -> None:
    refs = reference(onnx, frames, "botsort")
    answers = [send(replicas[n % 2], stack.api_key, f, "relay") for n, f in enumerate(frames)]
    count = assert_same_tracks(DETECT, session_frames(answers, "relay"), refs, 1)
    assert count >= MIN_TRACKED


def test_the_bound_evicts_the_least_recently_used_then_410(
    stack: Stack, frames: list[np.ndarray[Any, Any]], replicas: list[str]
) -> None:
    a, b = replicas
    key = stack.create_key("bounded", "test")
    for session in ("one", "two"):  # exactly the bound
        r = send(a, key, frames[0], session)
        assert r.status_code == 200 and "Trident-Track-Session-Evicted" not in r.headers
    assert send(b, key, frames[1], "one").headers["Trident-Track-Frame"] == "2"  # "two" is now the oldest
    r = send(b, key, frames[0], "three")
    assert r.status_code == 200 and r.headers["Trident-Track-Session-Evicted"] == "two"
    gone = send(a, key, frames[1], "two")
    assert_error(gone, 410, "Gone", "more than 2 sessions (track_sessions_per_key)")
    assert gone.headers["Trident-Track-Session"] == "two"
    listed = httpx.get(f"{a}/api/track-sessions", headers={"Authorization": f"Bearer {key}"}).json()
    assert sorted(s["id"] for s in listed["sessions"]) == ["one", "three"]


def test_idle_ends_with_410_and_delete_frees_the_id(
    stack: Stack, frames: list[np.ndarray[Any, Any]], replicas: list[str]
) -> None:
    a, b = replicas
    key = stack.create_key("idler", "test")
    headers = {"Authorization": f"Bearer {key}"}
    assert send(a, key, frames[0], "door").status_code == 200
    time.sleep(IDLE_S + 0.2)
    assert_error(send(b, key, frames[1], "door"), 410, "Gone", "unused for 2 s (track_session_idle_s)")
    assert httpx.delete(f"{a}/api/track-sessions/door", headers=headers).status_code == 204  # the tombstone
    assert send(a, key, frames[0], "door").headers["Trident-Track-Frame"] == "1"
    assert send(a, key, frames[1], "door").headers["Trident-Track-Frame"] == "2"
    assert httpx.delete(f"{b}/api/track-sessions/door", headers=headers).status_code == 204
    assert send(b, key, frames[2], "door").headers["Trident-Track-Frame"] == "1"  # free at once
    unknown = httpx.delete(f"{a}/api/track-sessions/never", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": "Not found: no track session 'never' for this key"
    }  # the Platform's shape
    httpx.delete(f"{a}/api/track-sessions/door", headers=headers)


def test_refusals(
    stack: Stack, frames: list[np.ndarray[Any, Any]], replicas: list[str], tmp_path: Path
) -> None:
    a = replicas[0]
    key = stack.create_key("refused", "test")
    assert send(a, key, frames[0], "cfg", tracker="botsort").status_code == 200
    conflict = send(a, key, frames[1], "cfg", tracker="bytetrack")
    assert_error(conflict, 409, "Conflict", f"was started with model {DETECT}, tracker botsort")
    assert_error(send(a, key, frames[1], "cfg", conf=0.3), 409, "Conflict", "conf=0.1")
    assert send(a, key, frames[1], "cfg").headers["Trident-Track-Frame"] == "2"  # still going
    bad = send(a, key, frames[0], "no spaces/allowed")
    assert_error(bad, 400, "Invalid request", "track_session must be 1 to 64 characters")
    assert_error(send(a, key, frames[0], "x" * 65), 400, "Invalid request", "track_session")
    clip = write_clip("detect", tmp_path / "c.mp4", frames=3)
    with clip.open("rb") as f:
        video = httpx.post(
            f"{a}/api/models/{DETECT}/predict",
            headers={"Authorization": f"Bearer {key}"},
            files={"file": ("c.mp4", f)},
            data={"track_session": "vid"},
            timeout=60,
        )
    assert_error(video, 400, "Invalid request", "a video is tracked whole")
    still = httpx.post(
        f"{a}/api/models/{DETECT}/predict",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("f.png", png(frames[0]))},
        data={"track": "true"},
        timeout=60,
    )
    assert_error(still, 400, "Invalid request", "track_session=<id>")
