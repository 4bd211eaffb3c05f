"""Video in, results for every frame out, against the real Triton.

Parity: a 60-frame video written here with OpenCV from moving crops of bus.jpg and zidane.jpg, as
MP4 (mp4v) and WebM (VP80), at vid_stride 1 and 3, gives the frames and, frame for frame, the
boxes of `YOLO(<exported onnx>).predict(<video>, vid_stride=N)`. Bad input is refused with a
specific detail, leaves nothing in the spool directory (the frontend's TMPDIR) nor an open spool
file, and the service stays ready.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
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
from ultralytics_platform.types import ModelsPredictResponse

from frontend.schemas import VideoFrame, VideoResponse, VideoSummary
from tests.helpers.formats import FORMATS, bomb, encode
from tests.helpers.models import build_busy_model
from tests.helpers.sdk_contract import assert_matches
from tests.helpers.stack import Stack, assert_error, post_predict
from tests.integration.test_tasks import compare, settled
from trident import runtime

pytestmark = pytest.mark.integration
DETECT = "test/coco/yolo11n"
CONF, IOU = 0.25, 0.45
FRAMES = 60
FRAME_LIMIT = 100  # the limits frontend's TRIDENT_MAX_VIDEO_FRAMES
PIXEL_LIMIT = 30_000_000  # ... and TRIDENT_MAX_IMAGE_PIXELS: an 8K frame (33 MP) is over it
TIMEOUT_S = 1.0  # ... and TRIDENT_VIDEO_TIMEOUT_S
NDJSON = {"Accept": "application/x-ndjson"}


def write_video(
    path: Path, fourcc: str, frames: Iterator[np.ndarray], size: tuple[int, int], fps: float = 30
) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    assert path.stat().st_size > 0
    return path


def moving_crops(bus: Path, zidane: Path, n: int = FRAMES) -> Iterator[np.ndarray]:
    """640x480 crops sliding over bus.jpg (first half) then zidane.jpg (second half)."""
    images = [cv2.imread(str(bus)), cv2.imread(str(zidane))]
    for t in range(n):
        image = images[t * 2 // n]
        h, w = image.shape[:2]
        x = (t * 11) % (w - 640)
        y = (t * 7) % (h - 480)
        yield np.ascontiguousarray(image[y : y + 480, x : x + 640])


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, bus: Path, zidane: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {
        "mp4": write_video(folder / "crops.mp4", "mp4v", moving_crops(bus, zidane), (640, 480)),
        "webm": write_video(folder / "crops.webm", "VP80", moving_crops(bus, zidane), (640, 480)),
    }


@pytest.fixture(scope="module")
def task_models(stack: Stack, model_dir: Path) -> dict[str, Path]:
    """slug -> exported ONNX: the stack's detector plus a segmentation and a pose model."""
    onnx = {DETECT: stack.exported[DETECT].path / "model.onnx"}
    for slug, yaml_name in (("video/v11/seg", "yolo11n-seg.yaml"), ("video/v11/pose", "yolo11n-pose.yaml")):
        weights = build_busy_model(yaml_name, model_dir / f"video-{yaml_name[:-5]}.pt")
        onnx[slug] = stack.export(weights, slug).path / "model.onnx"
    for slug in onnx:
        stack.wait_model(slug, timeout_s=120)
    return onnx


def post_video(
    base: str, key: str, path: Path, slug: str = DETECT, name: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    params = kwargs.pop("params", None)
    data = {"conf": str(CONF), "iou": str(IOU), **{k: str(v) for k, v in kwargs.items()}}
    with path.open("rb") as f:
        return httpx.post(
            f"{base}/api/models/{slug}/predict",
            headers=headers,
            params=params,
            files={"file": (name or path.name, f)},
            data=data,
            timeout=300,
        )


def reference(onnx: Path, video: Path, stride: int) -> list[Any]:
    model = YOLO(str(onnx))
    results = model.predict(str(video), vid_stride=stride, conf=CONF, iou=IOU, stream=True, verbose=False)
    return [settled(r) for r in results]


def assert_same_boxes(frames: list[dict[str, Any]], refs: list[Any], where: str) -> int:
    """Frame for frame: same count, boxes within 0.01 px, confidences within 1e-4, same classes."""
    assert len(frames) == len(refs), where
    compared = 0
    for k, (frame, ref) in enumerate(zip(frames, refs, strict=True)):
        preds = frame["predictions"]
        at = f"{where}, frame {k}"
        assert len(preds) == len(ref.boxes), at
        ours = np.array([[p["box"][c] for c in ("x1", "y1", "x2", "y2")] for p in preds]).reshape(-1, 4)
        np.testing.assert_allclose(ours, ref.boxes.xyxy.numpy(), atol=0.01, rtol=0, err_msg=at)
        np.testing.assert_allclose(
            [p["confidence"] for p in preds], ref.boxes.conf.numpy(), atol=1e-4, rtol=0, err_msg=at
        )
        assert [p["class"] for p in preds] == [ref.names[int(c)] for c in ref.boxes.cls.tolist()], at
        compared += len(preds)
    return compared


@pytest.mark.parametrize("container", ["mp4", "webm"])
@pytest.mark.parametrize("stride", [1, 3])
def test_frames_match_ultralytics_on_the_same_video(
    stack: Stack, task_models: dict[str, Path], videos: dict[str, Path], container: str, stride: int
) -> None:
    video = videos[container]
    with ThreadPoolExecutor(1) as pool:  # Ultralytics computes while the API answers (2 cores)
        expected = pool.submit(reference, task_models[DETECT], video, stride)
        r = post_video(stack.base_url, stack.api_key, video, vid_stride=stride)
        refs = expected.result()
    assert r.status_code == 200, r.text
    body = r.json()
    VideoResponse.model_validate(body)  # the shape /docs describes
    assert body["video"] == {"width": 640, "height": 480, "fps": 30.0, "frames": FRAMES}
    assert [f["frame"] for f in body["frames"]] == list(range(stride - 1, FRAMES, stride))
    compared = assert_same_boxes(body["frames"], refs, container)
    assert compared >= 200  # hundreds of boxes, never an empty comparison


@pytest.mark.parametrize("slug", ["video/v11/seg", "video/v11/pose"])
def test_segmentation_and_pose_frames_match_ultralytics(
    stack: Stack, task_models: dict[str, Path], videos: dict[str, Path], slug: str
) -> None:
    with ThreadPoolExecutor(1) as pool:  # Ultralytics computes while the API answers (2 cores)
        expected = pool.submit(reference, task_models[slug], videos["mp4"], 3)
        r = post_video(stack.base_url, stack.api_key, videos["mp4"], slug, vid_stride=3)
        refs = expected.result()
    assert r.status_code == 200, r.text
    frames = r.json()["frames"]
    assert assert_same_boxes(frames, refs, slug) >= 100
    for frame, ref in zip(frames, refs, strict=True):
        if len(ref.boxes):  # an empty frame is empty on both sides (assert_same_boxes)
            compare(slug, frame["predictions"], ref)  # outlines (IoU >= 0.99), keypoints (0.01 px)


def test_platform_answer_has_one_image_per_frame(stack: Stack, videos: dict[str, Path]) -> None:
    seed = post_video(stack.base_url, stack.api_key, videos["mp4"], vid_stride=3).json()
    r = post_video(stack.base_url, stack.api_key, videos["mp4"], vid_stride=3, params={"format": "platform"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert_matches(body, ModelsPredictResponse)
    assert body["metadata"]["imageCount"] == len(body["images"]) == FRAMES // 3
    for image, frame in zip(body["images"], seed["frames"], strict=True):
        assert image["shape"] == [480, 640]
        assert [x["box"] for x in image["results"]] == [p["box"] for p in frame["predictions"]]


def stream_lines(base: str, key: str, path: Path, **params: Any) -> tuple[list[dict[str, Any]], list[float]]:
    """The NDJSON lines of a streamed answer and the seconds at which each arrived."""
    lines, times = [], []
    start = time.monotonic()
    headers = {"Authorization": f"Bearer {key}", **NDJSON}
    with (
        path.open("rb") as f,
        httpx.stream(
            "POST",
            f"{base}/api/models/{DETECT}/predict",
            headers=headers,
            files={"file": (path.name, f)},
            data={"conf": str(CONF), "iou": str(IOU), **{k: str(v) for k, v in params.items()}},
            timeout=300,
        ) as r,
    ):
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("application/x-ndjson")
        assert int(r.headers["X-Video-Frames"]) > 0 and float(r.headers["X-Video-Fps"]) > 0  # progress
        for line in r.iter_lines():
            if line:
                lines.append(json.loads(line))
                times.append(time.monotonic() - start)
    return lines, times


def test_streamed_frames_equal_the_whole_answer_and_arrive_as_they_are_ready(
    stack: Stack, videos: dict[str, Path]
) -> None:
    whole = post_video(stack.base_url, stack.api_key, videos["mp4"]).json()
    lines, times = stream_lines(stack.base_url, stack.api_key, videos["mp4"])
    *frames, summary = lines
    for frame in frames:
        VideoFrame.model_validate(frame)  # the lines /docs describes
    VideoSummary.model_validate(summary)
    assert [f["predictions"] for f in frames] == [f["predictions"] for f in whole["frames"]]
    assert [f["frame"] for f in frames] == list(range(FRAMES))
    assert summary == {"success": True, "video": whole["video"], "processed": FRAMES}
    assert times[0] < times[-1]  # the first frames came before the video was done


def test_a_video_request_counts_once_against_the_quota_and_every_frame_in_the_metrics(
    stack: Stack, videos: dict[str, Path], bus: Path
) -> None:
    base, model = stack.base_url, f'model="{DETECT}"'
    frame_stage = f'{model},stage="frame"'
    counts = (
        metric(base, "trident_video_requests_total", 'outcome="ok"'),
        metric(base, "trident_video_frames_total", model),
        metric(base, "trident_request_stage_seconds_count", frame_stage),
    )
    before = int(stack.predict(DETECT, bus).headers["X-RateLimit-Remaining"])
    r = post_video(stack.base_url, stack.api_key, videos["mp4"], vid_stride=3)
    assert r.status_code == 200
    assert int(r.headers["X-RateLimit-Remaining"]) == before - 1
    assert metric(base, "trident_video_requests_total", 'outcome="ok"') == counts[0] + 1
    assert metric(base, "trident_video_frames_total", model) == counts[1] + FRAMES // 3
    assert metric(base, "trident_request_stage_seconds_count", frame_stage) == counts[2] + FRAMES // 3


def test_an_image_named_mp4_is_an_image_and_a_video_named_jpg_is_a_video(
    stack: Stack, videos: dict[str, Path], bus: Path
) -> None:
    as_image = post_video(stack.base_url, stack.api_key, bus, name="bus.mp4")
    assert as_image.status_code == 200, as_image.text
    assert (
        as_image.json()["predictions"] == stack.predict(DETECT, bus, conf=CONF, iou=IOU).json()["predictions"]
    )
    as_video = post_video(stack.base_url, stack.api_key, videos["mp4"], name="clip.jpg", vid_stride=3)
    assert as_video.status_code == 200, as_video.text
    assert len(as_video.json()["frames"]) == FRAMES // 3


def metric(base: str, name: str, labels: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


# --- bad input, on a frontend of its own: low limits and its own spool directory -------------


@pytest.fixture(scope="module")
def limited(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    """(base URL, spool directory, pid) of a frontend with low video limits."""
    root = tmp_path_factory.mktemp("video-limits")
    spool = root / "spool"
    spool.mkdir()
    process, base = stack.spawn_frontend(
        root / "frontend.log",
        TMPDIR=str(spool),
        TRIDENT_MAX_VIDEO_FRAMES=str(FRAME_LIMIT),
        TRIDENT_MAX_IMAGE_PIXELS=str(PIXEL_LIMIT),
        TRIDENT_VIDEO_TIMEOUT_S=str(TIMEOUT_S),
    )
    try:
        yield base, spool, process.pid
    finally:
        runtime.stop(process)


def spool_files(spool: Path, pid: int) -> list[str]:
    """Files left in the spool directory, and spool files the frontend still holds open (an unnamed
    temporary file shows as `<dir>/#<inode> (deleted)`)."""
    held = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(spool)):
            held.append(target)
    return [p.name for p in spool.iterdir()] + held


def assert_clean_and_ready(base: str, spool: Path, pid: int) -> None:
    deadline = time.monotonic() + 5
    while (left := spool_files(spool, pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []
    assert httpx.get(f"{base}/readyz").status_code == 200


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, videos: dict[str, Path], bus: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-videos")
    data = videos["mp4"].read_bytes()
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    small = np.zeros((64, 64, 3), np.uint8)
    return {
        "truncated": truncated,
        "empty": write_video(folder / "empty.avi", "MJPG", iter([]), (64, 64)),
        "8k": write_video(
            folder / "8k.mp4", "mp4v", iter([np.zeros((4320, 7680, 3), np.uint8)] * 2), (7680, 4320)
        ),
        "long": write_video(folder / "long.mp4", "mp4v", iter([small] * (FRAME_LIMIT + 20)), (64, 64)),
        "slow": write_video(
            folder / "slow.mp4",
            "mp4v",
            (cv2.resize(f, (1280, 960)) for f in moving_crops(bus, bus, FRAME_LIMIT)),
            (1280, 960),
        ),
    }


@pytest.mark.parametrize(
    ("video", "status", "message", "detail"),
    [
        ("truncated", 400, "Invalid image", "the video could not be opened: it is truncated"),
        ("empty", 400, "Invalid image", "the video has no frames"),
        ("8k", 400, "Invalid image", f"video frames are 7680x4320 pixels; the limit is {PIXEL_LIMIT} pixels"),
        (
            "long",
            413,
            "Payload too large",
            f"the video has {FRAME_LIMIT + 20} frames; the limit is {FRAME_LIMIT}",
        ),
    ],
)
def test_a_bad_video_is_refused_and_leaves_nothing(
    stack: Stack,
    limited: tuple[str, Path, int],
    bad: dict[str, Path],
    video: str,
    status: int,
    message: str,
    detail: str,
) -> None:
    base, spool, pid = limited
    assert_error(post_video(base, stack.api_key, bad[video]), status, message, detail)
    assert_clean_and_ready(base, spool, pid)


def test_a_hostile_image_of_each_format_leaves_nothing_either(
    stack: Stack, limited: tuple[str, Path, int]
) -> None:
    """Every image format's bomb and a truncated file of it (tests/helpers/formats.py): a 400, and
    nothing in the spool directory or held open, whichever decoder (in process or a worker) refused it."""
    base, spool, pid = limited
    sample = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    for fmt in FORMATS:
        whole = encode(sample, fmt)
        for data in (bomb(fmt), whole[: len(whole) // 4]):
            r = httpx.post(
                f"{base}/api/models/{DETECT}/predict",
                headers={"Authorization": f"Bearer {stack.api_key}"},
                files={"file": ("upload", data, "application/octet-stream")},
                timeout=60,
            )
            assert r.status_code == 400, (fmt, r.text)
    assert_clean_and_ready(base, spool, pid)


@pytest.mark.parametrize("stride", ["0", "-1", "abc"])
def test_vid_stride_must_be_a_positive_integer(
    stack: Stack, limited: tuple[str, Path, int], videos: dict[str, Path], stride: str
) -> None:
    base, spool, pid = limited
    r = post_video(base, stack.api_key, videos["mp4"], vid_stride=stride)
    assert_error(
        r, 400, "Invalid request", f"vid_stride must be an integer between 1 and 1000, got '{stride}'"
    )
    assert_clean_and_ready(base, spool, pid)


def test_a_video_past_the_deadline_is_504_or_a_final_error_line(
    stack: Stack, limited: tuple[str, Path, int], bad: dict[str, Path]
) -> None:
    base, spool, pid = limited
    start = time.monotonic()
    r = post_video(base, stack.api_key, bad["slow"])
    assert_error(r, 504, "Inference timeout", f"the video was not processed within {TIMEOUT_S:g} s")
    assert time.monotonic() - start < TIMEOUT_S + 5  # stopped within a batch of the deadline
    lines, _ = stream_lines(base, stack.api_key, bad["slow"])
    assert lines[-1]["success"] is False
    assert lines[-1]["error"]["code"] == "inference_timeout"
    assert all("frame" in line for line in lines[:-1])
    assert_clean_and_ready(base, spool, pid)


def raw_post(base: str, key: str, head: list[str], parts: list[bytes], read: bool = True) -> str:
    """Send a predict by hand on a socket; the status line, or "" when `read` is false (hang up)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        lines = [
            f"POST /api/models/{DETECT}/predict HTTP/1.1",
            f"Host: {host}:{port}",
            f"Authorization: Bearer {key}",
        ]
        sock.sendall("\r\n".join([*lines, *head, "", ""]).encode())
        try:
            for part in parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed: expected for a refusal
        return sock.recv(65536).decode(errors="replace").split("\r\n", 1)[0] if read else ""


def test_a_101_mb_upload_is_413_before_it_is_sent(
    stack: Stack, limited: tuple[str, Path, int], videos: dict[str, Path]
) -> None:
    base, spool, pid = limited
    size = 101 * 1024 * 1024
    start = time.monotonic()
    head = ["Content-Type: multipart/form-data; boundary=x", f"Content-Length: {size}"]
    status = raw_post(base, stack.api_key, head, [b"--x\r\n"])
    assert status.startswith("HTTP/1.1 413 ")
    assert time.monotonic() - start < 2.0
    assert_clean_and_ready(base, spool, pid)


def test_a_chunked_101_mb_video_is_cut_at_the_limit(
    stack: Stack, limited: tuple[str, Path, int], videos: dict[str, Path]
) -> None:
    base, spool, pid = limited
    part = (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n\r\n'
        + videos["mp4"].read_bytes()
    )
    chunk = b"\0" * (1024 * 1024)
    chunks = [part] + [chunk] * 101
    body = [f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks] + [b"0\r\n\r\n"]
    head = ["Content-Type: multipart/form-data; boundary=x", "Transfer-Encoding: chunked"]
    assert raw_post(base, stack.api_key, head, body).startswith("HTTP/1.1 413 ")
    assert_clean_and_ready(base, spool, pid)


def test_a_client_that_hangs_up_mid_upload_leaves_no_spool(
    stack: Stack, limited: tuple[str, Path, int], videos: dict[str, Path]
) -> None:
    base, spool, pid = limited
    data = videos["mp4"].read_bytes() * 20  # several MB: past the 1 MB kept in memory, so on disk
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n\r\n' + data
    head = ["Content-Type: multipart/form-data; boundary=x", f"Content-Length: {len(part) + 1000}"]
    raw_post(base, stack.api_key, head, [part], read=False)
    assert_clean_and_ready(base, spool, pid)


def test_a_client_that_hangs_up_mid_stream_stops_the_work(stack: Stack, bad: dict[str, Path]) -> None:
    """On the main frontend (no deadline to stop it): the stream stops within a batch or two."""
    assert stack.frontend is not None
    base, spool, pid = stack.base_url, Path(tempfile.gettempdir()), stack.frontend.pid
    gone, frames = 'outcome="disconnected"', f'model="{DETECT}"'
    before = (
        metric(base, "trident_video_requests_total", gone),
        metric(base, "trident_video_frames_total", frames),
    )
    headers = {"Authorization": f"Bearer {stack.api_key}", **NDJSON}
    with (
        bad["slow"].open("rb") as f,
        httpx.stream(
            "POST",
            f"{base}/api/models/{DETECT}/predict",
            headers=headers,
            files={"file": ("v.mp4", f)},
            timeout=60,
        ) as r,
    ):
        assert r.status_code == 200
        first = next(line for line in r.iter_lines() if line)
        assert json.loads(first)["frame"] == 0
    deadline = time.monotonic() + 10
    while metric(base, "trident_video_requests_total", gone) != before[0] + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(base, "trident_video_requests_total", gone) == before[0] + 1
    processed = metric(base, "trident_video_frames_total", frames) - before[1]
    assert 0 < processed < FRAME_LIMIT // 2  # of 100 frames: stopped a batch or two after the hang-up
    assert [t for t in spool_files(spool, pid) if t.endswith("(deleted)")] == []
    assert httpx.get(f"{base}/readyz").status_code == 200


# --- every other task: each frame's answer is the answer for that frame sent as an image -------

OTHER_TASKS = {
    "video/v11/cls": "yolo11n-cls.yaml",
    "video/v11/obb": "yolo11n-obb.yaml",
    "video/v26/sem": "yolo26n-sem.yaml",
    "video/v26/depth": "yolo26n-depth.yaml",
}


@pytest.fixture(scope="module")
def other_tasks(stack: Stack, model_dir: Path) -> list[str]:
    for slug, yaml_name in OTHER_TASKS.items():
        stack.export(build_busy_model(yaml_name, model_dir / f"video-{yaml_name[:-5]}.pt"), slug)
    for slug in OTHER_TASKS:
        stack.wait_model(slug, timeout_s=120)
    return list(OTHER_TASKS)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory, bus: Path, zidane: Path) -> tuple[Path, list[Path]]:
    """A 6-frame MP4, and its frames as OpenCV decodes them, saved losslessly (PNG)."""
    folder = tmp_path_factory.mktemp("short-clip")
    clip = write_video(folder / "short.mp4", "mp4v", moving_crops(bus, zidane, 6), (640, 480))
    capture, frames = cv2.VideoCapture(str(clip)), []
    while (read := capture.read())[0]:
        frames.append(folder / f"frame{len(frames)}.png")
        cv2.imwrite(str(frames[-1]), read[1])
    assert len(frames) == 6
    return clip, frames


@pytest.mark.parametrize("slug", list(OTHER_TASKS))
def test_every_task_answers_each_frame_as_it_answers_that_image(
    stack: Stack, other_tasks: list[str], short_clip: tuple[Path, list[Path]], slug: str
) -> None:
    clip, images = short_clip
    r = post_video(stack.base_url, stack.api_key, clip, slug)
    assert r.status_code == 200, r.text
    frames = r.json()["frames"]
    assert [f["frame"] for f in frames] == list(range(len(images)))
    for frame, image in zip(frames, images, strict=True):
        alone = stack.predict(slug, image, conf=CONF, iou=IOU).json()
        keys = {"predictions", "semantic_mask", "depth"} & alone.keys()
        assert {k: frame[k] for k in keys} == {k: alone[k] for k in keys}, image.name
        assert alone["predictions"] or "semantic_mask" in alone or "depth" in alone  # never empty


def test_a_video_runs_on_its_own_deadline_not_one_inferences(
    stack: Stack, task_models: dict[str, Path], short_clip: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    """A video keeps its next batch waiting in Triton's queue behind the running one, by design, so
    its calls run on the video's deadline: with Triton's deadline (`TRIDENT_TRITON_TIMEOUT_S`) a
    busy CPU answered a segmentation video 504 part-way through. An image keeps that deadline."""
    clip, images = short_clip
    slug = "video/v11/seg"
    process, base = stack.spawn_frontend(tmp_path / "frontend.log", TRIDENT_TRITON_TIMEOUT_S="0.05")
    try:
        image = stack.predict(slug, images[0], conf=CONF, iou=IOU)
        assert image.status_code == 200, image.text
        alone = post_predict(base, stack.api_key, slug, images[0], conf=CONF, iou=IOU)
        assert_error(
            alone, 504, "Inference timeout", "inference did not finish within the deadline (video~v11~seg)"
        )
        r = post_video(base, stack.api_key, clip, slug)
        assert r.status_code == 200, r.text
        frames = r.json()["frames"]
        assert [f["frame"] for f in frames] == list(range(len(images)))
        assert frames[0]["predictions"] == image.json()["predictions"]  # the same answer, all of it
        assert sum(len(f["predictions"]) for f in frames) >= 300
    finally:
        runtime.stop(process)
