"""Camera streams through the real stack, against a real MJPEG camera on loopback
(`tests.helpers.camera`) playing a generated clip (`tests.helpers.clips`).

A frontend of its own (loopback allowed, short timeouts, `TRIDENT_STREAM_RECORD_DIR` so each
processed frame is written as the PNG the model saw) runs the streams. Checked: every processed
frame's event equals the same frame predicted as an image through the API; a tracked stream's ids
equal a track session's on the same frames (which `test_track_sessions` holds to
`model.track()`); the camera stopped gives `reconnecting` with the error, started again gives
`running` with no action; pause and resume; a restart of the frontend brings the stream back;
`Last-Event-ID` resumes; bad input gives a 400 or a `failed`/`reconnecting` status with the
reason, credentials never answered nor logged, and the service keeps answering.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import orjson
import pytest

from demo.models import weights
from demo.train import RECIPES
from frontend.streams.webhooks import verify
from store.keys import KeyStore
from tests.helpers.camera import MjpegCamera, garbage_server, silent_port
from tests.helpers.clips import read_frames, write_clip
from tests.helpers.stack import Stack, free_port
from tests.helpers.webhook import WebhookReceiver
from tests.integration.test_track_video import DETECT, MODELS
from trident import runtime

pytestmark = pytest.mark.integration
FPS = 8


@pytest.fixture(scope="module")
def model(stack: Stack) -> str:
    recipe = RECIPES[MODELS[DETECT]]
    if DETECT not in stack.exported:
        stack.export(weights(recipe), DETECT, imgsz=recipe.imgsz)
    stack.wait_model(DETECT, timeout_s=120)
    return DETECT


@pytest.fixture(scope="module")
def key(frontend: Frontend) -> str:
    return KeyStore(frontend.database).create_key("streamer", "test", scopes=("predict", "streams"))[0]


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MjpegCamera]:
    clip = write_clip("detect", tmp_path_factory.mktemp("stream-clip") / "detect.mp4", frames=24)
    cam = MjpegCamera(read_frames(clip), FPS)
    cam.start()
    yield cam
    cam.stop()


class Frontend:
    def __init__(self, stack: Stack, root: Path) -> None:
        self.stack = stack
        self.root = root
        self.record = root / "frames"
        # a key store of its own: the session frontend would take the streams' leases otherwise
        # (every process holding the same database runs its share of the streams)
        self.database = f"sqlite:///{root / 'streams.db'}"
        self.env = {
            "TRIDENT_DATABASE_URL": self.database,
            "TRIDENT_SOURCE_ALLOW_PRIVATE": "true",
            "TRIDENT_STREAM_RECORD_DIR": str(self.record),
            "TRIDENT_STREAM_CONNECT_TIMEOUT_S": "2",
            "TRIDENT_STREAM_READ_TIMEOUT_S": "2",
            "TRIDENT_STREAM_BACKOFF_MAX_S": "0.5",
            "TRIDENT_STREAM_GIVE_UP_AFTER": "4",
            "TRIDENT_STREAM_LEASE_S": "3",
            "TRIDENT_STREAMS_PER_KEY": "3",
            "TRIDENT_STREAM_WEBHOOK_QUEUE": "3",  # a tiny bound, so a receiver's outage cuts events
            "TRIDENT_STREAM_WEBHOOK_BACKOFF_MAX_S": "0.2",
            "TRIDENT_STREAM_WEBHOOK_ATTEMPTS": "40",
        }
        self.runs = 0
        self.start()

    def start(self) -> None:
        self.runs += 1
        self.log = self.root / f"frontend-{self.runs}.log"
        self.process, self.base = self.stack.spawn_frontend(self.log, **self.env)

    def stop(self) -> None:
        runtime.stop(self.process)


@pytest.fixture(scope="module")
def frontend(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Frontend]:
    fe = Frontend(stack, tmp_path_factory.mktemp("streams"))
    yield fe
    fe.stop()


def api(fe: Frontend, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, f"{fe.base}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30, **kwargs
    )


def until(check: Callable[[], Any], timeout_s: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def status_is(fe: Frontend, key: str, stream: str, *statuses: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = api(fe, key, "GET", f"/api/streams/{stream}").json()
        return body if body["status"] in statuses else None

    return check


def events(
    fe: Frontend, key: str, stream: str, count: int, last_id: str | None = None
) -> list[dict[str, Any]]:
    """The next `count` frame events (each with its SSE `id` as `_id`)."""
    headers = {"Authorization": f"Bearer {key}", **({"Last-Event-ID": last_id} if last_id else {})}
    found: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{fe.base}/api/streams/{stream}/events", headers=headers, timeout=30) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in r.iter_lines():
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if fields.get("event") == "frame":
                found.append({**orjson.loads(fields["data"]), "_id": fields["id"]})
                if len(found) == count:
                    return found
            fields = {}
    raise AssertionError("the event stream ended")


def refused(r: httpx.Response, status: int, detail: str) -> None:
    """The Platform's error body (every /api/ route but predict answers in it), no trace."""
    assert r.status_code == status, r.text
    assert detail in r.json()["error"] and "Traceback" not in r.text


def create(fe: Frontend, key: str, source: str, **fields: Any) -> httpx.Response:
    return api(fe, key, "POST", "/api/streams", json={"model": DETECT, "source": source, **fields})


def recorded(fe: Frontend, stream: str, frame: int) -> bytes:
    image = cv2.imread(str(fe.record / stream / f"{frame:06d}.png"))
    assert image is not None
    return bytes(cv2.imencode(".png", image)[1])


def predict(fe: Frontend, key: str, png: bytes, **data: object) -> dict[str, Any]:
    r = api(fe, key, "POST", f"/api/models/{DETECT}/predict", files={"file": ("f.png", png)}, data=data)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_each_processed_frame_is_the_image_answer_and_tracked_ids_are_a_sessions(
    frontend: Frontend, key: str, model: str, camera: MjpegCamera
) -> None:
    plain = create(frontend, key, camera.url, max_fps=4)
    assert plain.status_code == 201, plain.text
    tracked = create(frontend, key, camera.url, max_fps=4, track=True, tracker="bytetrack")
    assert tracked.status_code == 201, tracked.text
    plain_id, tracked_id = plain.json()["id"], tracked.json()["id"]
    assert tracked.json()["options"]["conf"] == 0.1  # `track` predicts at 0.1, as model.track()

    got = events(frontend, key, plain_id, 6)
    numbers = [e["frame"] for e in got]
    assert numbers == sorted(numbers) and len(set(numbers)) == 6
    boxes = 0
    for event in got:
        assert event["stream"] == plain_id and event["captured_at"].endswith("Z") and event["lag_ms"] >= 0
        image = predict(frontend, key, recorded(frontend, plain_id, event["frame"]))
        assert event["predictions"] == image["predictions"], (event, image)
        boxes += len(event["predictions"])
    assert boxes >= 12, "too few boxes for the comparison to mean much"

    got = events(frontend, key, tracked_id, 8)
    session = f"replay-{tracked_id}"
    ids = 0
    for event in got:  # the frames the stream processed, in its order, one by one in a session
        body = predict(
            frontend,
            key,
            recorded(frontend, tracked_id, event["frame"]),
            track_session=session,
            tracker="bytetrack",
        )
        assert event["predictions"] == body["predictions"], event["frame"]
        ids += sum(1 for p in event["predictions"] if p.get("track_id") is not None)
    assert ids >= 12, "too few tracked boxes for the comparison to mean much"

    # a client that reconnects with Last-Event-ID gets what followed, nothing twice
    first = events(frontend, key, plain_id, 2)
    more = events(frontend, key, plain_id, 1, last_id=first[0]["_id"])
    assert more[0]["frame"] == first[1]["frame"]

    metrics = httpx.get(f"{frontend.base}/metrics").text
    assert f'trident_stream_frames_total{{outcome="processed",stream="{plain_id}"}}' in metrics
    assert f'trident_stream_lag_seconds_count{{stream="{plain_id}"}}' in metrics
    for stream in (plain_id, tracked_id):
        assert api(frontend, key, "DELETE", f"/api/streams/{stream}").status_code == 204
    assert api(frontend, key, "GET", f"/api/streams/{plain_id}").status_code == 404


def test_reconnects_pauses_resumes_and_survives_a_restart(
    frontend: Frontend, key: str, model: str, camera: MjpegCamera
) -> None:
    r = create(frontend, key, camera.url, max_fps=5)
    assert r.status_code == 201, r.text
    stream = r.json()["id"]
    until(status_is(frontend, key, stream, "running"), what="running")

    camera.stop()
    down = until(status_is(frontend, key, stream, "reconnecting"), what="reconnecting")
    assert down["error"], down
    camera.start()
    up = until(status_is(frontend, key, stream, "running"), what="running again")
    assert up["frames"]["reconnects"] >= 1
    assert "trident_stream_reconnects_total" in httpx.get(f"{frontend.base}/metrics").text

    assert api(frontend, key, "POST", f"/api/streams/{stream}/pause").json()["status"] == "paused"
    time.sleep(0.5)
    processed = api(frontend, key, "GET", f"/api/streams/{stream}").json()["frames"]["processed"]
    time.sleep(1)
    body = api(frontend, key, "GET", f"/api/streams/{stream}").json()
    assert body["status"] == "paused" and body["frames"]["processed"] == processed
    assert api(frontend, key, "POST", f"/api/streams/{stream}/resume").status_code == 200
    until(status_is(frontend, key, stream, "running"), what="running after resume")

    frontend.stop()
    frontend.start()
    until(status_is(frontend, key, stream, "running"), what="running after a restart")
    assert events(frontend, key, stream, 2)[0]["stream"] == stream
    assert api(frontend, key, "DELETE", f"/api/streams/{stream}").status_code == 204


def test_a_webhook_gets_signed_events_in_order_retries_and_counts_what_the_bound_cut(
    frontend: Frontend, key: str, model: str, camera: MjpegCamera
) -> None:
    refused(create(frontend, key, camera.url, webhook_url="rtsp://127.0.0.1/x"), 400, "webhook_url")
    with WebhookReceiver() as hook:
        r = create(frontend, key, camera.url, max_fps=5, webhook_url=hook.url)
        assert r.status_code == 201, r.text
        stream, secret = r.json()["id"], r.json()["webhook"]["secret"]
        assert secret.startswith("whsec_") and r.json()["webhook"]["url"] == hook.url.split("?")[0]
        until(lambda: len(hook.accepted()) >= 3, what="the first events")
        hook.fail_for(2.0)  # 500s: the event in hand is retried, the others overflow the queue of 3
        until(lambda: len(hook.received) - len(hook.accepted()) >= 3, what="retries")
        until(lambda: len(hook.accepted()) >= 10, what="the rest after the outage")
        api(frontend, key, "POST", f"/api/streams/{stream}/pause")

        def drained() -> dict[str, Any] | None:
            body: dict[str, Any] = api(frontend, key, "GET", f"/api/streams/{stream}").json()
            return body if body["webhook"]["queued"] == 0 else None

        body = until(drained, what="the queue drained")
        accepted = hook.accepted()
    counts = body["webhook"]
    assert "secret" not in counts and secret not in str(api(frontend, key, "GET", "/api/streams").text)
    frames = []
    for received in accepted:
        assert verify(secret, received.headers["x-trident-signature"], received.body, time.time())
        event = orjson.loads(received.body)
        assert event["stream"] == stream and "predictions" in event
        assert received.headers["x-trident-event-id"].endswith(f"-{event['frame']}")
        frames.append(event["frame"])
    assert frames == sorted(frames) and len(set(frames)) == len(frames), frames  # in order, once each
    assert counts["retried"] >= 2 and counts["failed"] == 0 and counts["delivered"] == len(accepted)
    # what the bound cut: the processed frames the receiver never got, exactly the drop count
    processed = [e["frame"] for e in events(frontend, key, stream, body["frames"]["processed"])]
    missing = set(processed) - set(frames)
    assert counts["dropped"] >= 3 and len(missing) == counts["dropped"], (counts, sorted(missing))
    metrics = httpx.get(f"{frontend.base}/metrics").text
    assert f'trident_stream_webhook_dropped_total{{stream="{stream}"}} {counts["dropped"]}.0' in metrics
    assert f'trident_stream_webhook_retries_total{{stream="{stream}"}}' in metrics
    assert secret not in metrics and "hooksecret" not in metrics
    assert secret not in frontend.log.read_text() and "hooksecret" not in frontend.log.read_text()
    assert api(frontend, key, "DELETE", f"/api/streams/{stream}").status_code == 204


def preview_parts(fe: Frontend, key: str, stream: str, count: int) -> list[tuple[int, np.ndarray[Any, Any]]]:
    """The next `count` frames of the stream's preview: (frame number, image), then disconnected."""
    found: list[tuple[int, np.ndarray[Any, Any]]] = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("GET", f"{fe.base}/api/streams/{stream}/preview", headers=headers, timeout=30) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"] == "multipart/x-mixed-replace; boundary=trident-preview"
        buffer = b""
        for chunk in r.iter_raw():
            buffer += chunk
            while (end := buffer.find(b"\r\n\r\n")) >= 0:
                head = buffer[:end].decode()
                length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
                if len(buffer) < end + 4 + length + 2:
                    break
                jpeg = buffer[end + 4 : end + 4 + length]
                buffer = buffer[end + 4 + length + 2 :]
                number = int(head.split("X-Frame: ")[1].split("\r\n")[0])
                found.append((number, cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)))
                if len(found) == count:
                    return found
    raise AssertionError("the preview ended")


def test_the_preview_draws_each_processed_frames_boxes_and_frees_its_viewers(
    frontend: Frontend, key: str, model: str, camera: MjpegCamera
) -> None:
    from frontend.streams.preview import PALETTE

    r = create(frontend, key, camera.url, max_fps=4)
    assert r.status_code == 201, r.text
    stream = r.json()["id"]
    until(status_is(frontend, key, stream, "running"), what="running")
    shots = preview_parts(frontend, key, stream, 3)
    numbers = [n for n, _ in shots]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    by_frame = {e["frame"]: e for e in events(frontend, key, stream, api_processed(frontend, key, stream))}
    edges = 0
    for number, image in shots:
        seen = recorded_image(frontend, stream, number)
        assert image.shape == seen.shape
        for p in by_frame[number]["predictions"]:
            box = p["box"]
            x, y = round(box["x1"]), round((box["y1"] + box["y2"]) / 2)
            colour = np.array(PALETTE[p["class_id"] % len(PALETTE)])
            edges += int(np.abs(image[y, x].astype(int) - colour).max() <= 60)
    assert edges >= 3, "the boxes are not drawn where the events say"
    url, headers = f"{frontend.base}/api/streams/{stream}/preview", {"Authorization": f"Bearer {key}"}

    def viewers() -> int:
        count: int = api(frontend, key, "GET", f"/api/streams/{stream}").json()["preview_viewers"]
        return count

    with ExitStack() as held:
        readers = []  # kept: an httpx iterator dropped closes its response
        for _ in range(4):
            r = held.enter_context(httpx.stream("GET", url, headers=headers, timeout=10))
            assert r.status_code == 200
            readers.append(r.iter_raw())
            next(readers[-1])  # its first frame: the viewer is counted
        assert viewers() == 4
        with httpx.stream("GET", url, headers=headers, timeout=10) as fifth:
            assert fifth.status_code == 409, fifth.headers
            assert "4 viewers" in fifth.read().decode()
    until(lambda: viewers() == 0, 10, what="the viewers freed")
    assert api(frontend, key, "DELETE", f"/api/streams/{stream}").status_code == 204


def api_processed(fe: Frontend, key: str, stream: str) -> int:
    processed: int = api(fe, key, "GET", f"/api/streams/{stream}").json()["frames"]["processed"]
    return processed


def recorded_image(fe: Frontend, stream: str, frame: int) -> np.ndarray[Any, Any]:
    image = cv2.imread(str(fe.record / stream / f"{frame:06d}.png"))
    assert image is not None
    return image


def test_bad_sources_are_refused_or_fail_with_a_reason(
    stack: Stack, frontend: Frontend, key: str, model: str, camera: MjpegCamera
) -> None:
    r = create(frontend, key, "ftp://127.0.0.1/cam")
    refused(r, 400, "only rtsp://")
    r = create(frontend, key, camera.url, vid_stride=2)
    refused(r, 400, "vid_stride")
    no_scope = KeyStore(frontend.database).create_key("streamless", "test")[0]
    assert (
        api(
            frontend, no_scope, "POST", "/api/streams", json={"model": DETECT, "source": camera.url}
        ).status_code
        == 403
    )
    # the session stack keeps the `source` policy: loopback is refused there
    stack_key = KeyStore(stack.settings.key_store_url).create_key("s", "test", scopes=("streams",))[0]
    r = httpx.post(
        f"{stack.base_url}/api/streams",
        headers={"Authorization": f"Bearer {stack_key}"},
        json={"model": DETECT, "source": camera.url},
    )
    refused(r, 400, "loopback")

    secret = create(frontend, key, "rtsp://admin:hunter2@127.0.0.1:1/live?token=s3cret")
    assert secret.status_code == 201, secret.text
    assert "hunter2" not in secret.text and "s3cret" not in secret.text
    assert secret.json()["source"] == "rtsp://***@127.0.0.1:1/live"
    with silent_port() as port, garbage_server() as garbage:
        silent = create(frontend, key, f"http://127.0.0.1:{port}/cam").json()["id"]
        junk = create(frontend, key, garbage).json()["id"]
        body = until(status_is(frontend, key, junk, "reconnecting", "failed"), what="garbage refused")
        assert "not an image" in body["error"]
        body = until(status_is(frontend, key, silent, "reconnecting", "failed"), what="silence noticed")
        assert "no data" in body["error"] or "no answer" in body["error"]
    body = until(status_is(frontend, key, secret.json()["id"], "reconnecting", "failed"), what="refused")
    assert "refused" in body["error"]
    failed = until(status_is(frontend, key, junk, "failed"), 30, what="failed after the attempts")
    assert "attempts in a row" in failed["error"]
    listed = api(frontend, key, "GET", "/api/streams").json()["streams"]
    assert "hunter2" not in str(listed) and len(listed) == 3
    assert "hunter2" not in frontend.log.read_text() and "s3cret" not in frontend.log.read_text()
    r = create(frontend, key, camera.url)
    refused(r, 409, "3 streams")
    for item in listed:
        assert api(frontend, key, "DELETE", f"/api/streams/{item['id']}").status_code == 204
    # the service is unaffected
    assert httpx.get(f"{frontend.base}/readyz").status_code == 200
    png = bytes(cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1])
    predict(frontend, key, png)


class RtspCamera:
    """GStreamer's RTSP server (`tests/helpers/rtsp_server.py`, the system Python) on loopback."""

    def __init__(self, folder: Path, frames: list[np.ndarray[Any, Any]]) -> None:
        for i, frame in enumerate(frames):
            cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        script = Path(__file__).parents[1] / "helpers" / "rtsp_server.py"
        self.process = subprocess.Popen(
            ["/usr/bin/python3", str(script), str(self.port), str(self.folder), str(FPS)],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None and self.process.stdout.readline() == b"ready\n"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def test_an_rtsp_camera_is_predicted_frame_by_frame_and_reconnected(
    frontend: Frontend, key: str, model: str, tmp_path: Path
) -> None:
    clip = write_clip("detect", tmp_path / "detect.mp4", frames=16, seed=1)
    rtsp = RtspCamera(tmp_path, read_frames(clip))
    rtsp.start()
    try:
        r = create(frontend, key, rtsp.url, max_fps=4)
        assert r.status_code == 201, r.text
        stream = r.json()["id"]
        boxes = 0
        for event in events(frontend, key, stream, 4):
            image = predict(frontend, key, recorded(frontend, stream, event["frame"]))
            assert event["predictions"] == image["predictions"], event["frame"]
            boxes += len(event["predictions"])
        assert boxes >= 8, "too few boxes for the comparison to mean much"
        rtsp.stop()
        down = until(status_is(frontend, key, stream, "reconnecting"), what="reconnecting")
        assert down["error"]
        rtsp.start()
        until(status_is(frontend, key, stream, "running"), what="running again")
        assert api(frontend, key, "DELETE", f"/api/streams/{stream}").status_code == 204
    finally:
        rtsp.stop()
