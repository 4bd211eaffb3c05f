"""Every documented error, in the Platform's envelope, against the real stack."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.stack import Stack, assert_error

pytestmark = pytest.mark.integration
SLUG = "test/coco/yolo11n"


def post(stack: Stack, path: str, headers: dict[str, str] | None = None, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{stack.base_url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_missing_key_is_401(stack: Stack, bus: Path) -> None:
    r = post(stack, f"/api/models/{SLUG}/predict", files={"file": bus.read_bytes()})
    assert_error(r, 401, "Unauthorized", "Bearer")


@pytest.mark.parametrize("header", ["Bearer wrong-key", "Basic {key}", "Bearer", "{key}"])
def test_wrong_key_is_401(stack: Stack, bus: Path, header: str) -> None:
    r = post(
        stack,
        f"/api/models/{SLUG}/predict",
        headers={"Authorization": header.format(key=stack.api_key)},
        files={"file": bus.read_bytes()},
    )
    assert_error(r, 401, "Unauthorized")


def test_unknown_model_is_404(stack: Stack, bus: Path) -> None:
    r = stack.predict("test/coco/no-such-model", bus)
    assert_error(r, 404, "Model not found", "test/coco/no-such-model")


def test_invalid_slug_is_404_like_a_missing_model(stack: Stack, bus: Path) -> None:
    r = stack.predict("Test/COCO/yolo11n", bus)
    assert_error(r, 404, "Model not found")


def test_auth_is_checked_before_the_model_exists(stack: Stack, bus: Path) -> None:
    """A caller without a key learns nothing about which models exist."""
    r = post(stack, "/api/models/test/coco/no-such-model/predict", files={"file": bus.read_bytes()})
    assert_error(r, 401, "Unauthorized")


def test_not_an_image_is_400(stack: Stack, tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("hello, I am not a JPEG")
    assert_error(stack.predict(SLUG, fake), 400, "Invalid image", "unsupported file type")


def test_truncated_jpeg_is_400(stack: Stack, bus: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(bus.read_bytes()[:300])
    assert_error(stack.predict(SLUG, cut), 400, "Invalid image")


def test_missing_file_is_400(stack: Stack) -> None:
    r = post(
        stack,
        f"/api/models/{SLUG}/predict",
        headers={"Authorization": f"Bearer {stack.api_key}"},
        data={"conf": "0.5"},
        files={"other": b"x"},
    )
    assert_error(r, 400, "Invalid image", "'file'")


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"conf": "1.01"}, "conf"),
        ({"conf": "-0.1"}, "conf"),
        ({"conf": "nan"}, "conf"),
        ({"iou": "2"}, "iou"),
        ({"iou": "high"}, "iou"),
        ({"imgsz": "31"}, "imgsz"),
        ({"imgsz": "1281"}, "imgsz"),
        ({"imgsz": "640.5"}, "imgsz"),
    ],
)
def test_out_of_range_parameters_are_400(
    stack: Stack, bus: Path, params: dict[str, str], detail: str
) -> None:
    assert_error(stack.predict(SLUG, bus, **params), 400, "Invalid request", detail)


@pytest.mark.parametrize(
    "params", [{"conf": "0"}, {"conf": "1"}, {"iou": "0"}, {"iou": "1"}, {"imgsz": "32"}, {"imgsz": "1280"}]
)
def test_parameters_at_their_limits_are_accepted(stack: Stack, bus: Path, params: dict[str, str]) -> None:
    assert stack.predict(SLUG, bus, **params).status_code == 200


def test_upload_over_10_mb_is_413_and_at_10_mb_is_read(stack: Stack, tmp_path: Path) -> None:
    limit = 10 * 1024 * 1024
    too_big = tmp_path / "big.jpg"
    too_big.write_bytes(b"\xff\xd8\xff" + b"\0" * (limit - 2))
    assert_error(stack.predict(SLUG, too_big), 413, "Payload too large", "10 MB")
    at_limit = tmp_path / "limit.jpg"
    at_limit.write_bytes(b"\xff\xd8\xff" + b"\0" * (limit - 3))
    assert_error(stack.predict(SLUG, at_limit), 400, "Invalid image")  # read, then refused as garbage


def test_not_multipart_is_400(stack: Stack) -> None:
    r = post(
        stack,
        f"/api/models/{SLUG}/predict",
        headers={"Authorization": f"Bearer {stack.api_key}"},
        json={"file": "x"},
    )
    assert_error(r, 400, "Invalid request", "multipart")


def test_health_endpoints(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/livez").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_openapi_docs_describe_the_predict_call(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/docs").status_code == 200
    spec = httpx.get(f"{stack.base_url}/openapi.json").json()
    op = spec["paths"]["/api/models/{owner}/{project}/{model}/predict"]["post"]
    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(form) == {
        "file",
        "source",
        "conf",
        "iou",
        "imgsz",
        "normalize",
        "decimals",
        "bits",
        "vid_stride",
        "track",
        "tracker",
        "track_high_thresh",
        "track_low_thresh",
        "new_track_thresh",
        "track_buffer",
        "match_thresh",
        "fuse_score",
        "track_session",
    }
    [session] = [s for s in form["track_session"]["anyOf"] if s["type"] == "string"]
    assert (session["minLength"], session["maxLength"]) == (1, 64) and session["pattern"]
    assert form["bits"]["enum"] == [8, 12, 16] and form["bits"]["default"] == 8
    assert form["track"]["default"] is False and form["tracker"]["enum"] == ["bytetrack", "botsort"]
    bounds = {n: (f["minimum"], f["maximum"], f["default"]) for n, f in form.items() if "minimum" in f}
    assert bounds == {
        "conf": (0, 1, 0.25),
        "iou": (0, 1, 0.45),
        "imgsz": (32, 1280, 640),
        "decimals": (0, 10, 5),
        "vid_stride": (1, 1000, 1),
        "track_high_thresh": (0, 1, 0.25),
        "track_low_thresh": (0, 1, 0.1),
        "new_track_thresh": (0, 1, 0.25),
        "track_buffer": (0, 10000, 30),
        "match_thresh": (0, 1, 0.8),
    }
    assert form["source"]["maxLength"] == 4096 and form["normalize"]["default"] is False
    assert {"200", "400", "401", "404", "409", "410", "413", "429", "503"} <= set(op["responses"])
    assert [p["name"] for p in op["parameters"] if p["in"] == "query"] == ["format"]
    # both contracts' answers, every field of each, with the Platform's closed objects
    shapes = op["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    assert {ref["$ref"].rsplit("/", 1)[-1] for ref in shapes} == {
        "PredictResponse",
        "VideoResponse",  # a video's seed answer; its platform answer is a PlatformPredictResponse
        "PlatformPredictResponse",
    }
    streamed = op["responses"]["200"]["content"]["application/x-ndjson"]["schema"]["description"]
    assert "one JSON line per processed frame" in streamed
    schemas = spec["components"]["schemas"]
    assert set(schemas["PredictResponse"]["properties"]) == {
        "success",
        "predictions",
        "semantic_mask",
        "depth",
        "image",
        "speed",
    }
    assert set(schemas["Prediction"]["properties"]) == {
        "class",
        "class_id",
        "confidence",
        "pixel_ratio",
        "box",
        "segments",
        "keypoints",
        "obb",
        "track_id",  # with track, on tracked video frames
    }
    assert set(schemas["PlatformPredictResponse"]["properties"]) == {"images", "metadata"}
    assert set(schemas["PlatformImage"]["properties"]) == {
        "shape",
        "speed",
        "results",
        "semantic_mask",
        "depth",
    }
    assert set(schemas["DepthMap"]["properties"]) == {"shape", "encoding", "data", "min", "max", "bits"}
    assert set(schemas["PlatformResult"]["properties"]) == {
        "name",
        "class",
        "confidence",
        "pixel_ratio",
        "box",
        "segments",
        "keypoints",
        "track_id",  # only when track was asked for
    }
    assert set(schemas["PlatformMetadata"]["properties"]) == {
        "imageCount",
        "functionTimeAlive",
        "functionTimeCall",
        "model",
        "task",
        "version",
        "classNames",
        "tracks",  # only when track was asked for
    }
    platform = [name for name in schemas if name.startswith("Platform")]
    assert all(schemas[name].get("additionalProperties") is False for name in platform), platform
    errors = op["responses"]["400"]["content"]["application/json"]["schema"]["anyOf"]
    assert {ref["$ref"].rsplit("/", 1)[-1] for ref in errors} == {"ErrorResponse", "PlatformErrorResponse"}


def test_model_list_shows_exported_models(stack: Stack) -> None:
    r = httpx.get(f"{stack.base_url}/api/models", headers={"Authorization": f"Bearer {stack.api_key}"})
    slugs = {m["slug"]: m for m in r.json()["models"]}
    assert {"test/coco/yolo11n", "test/coco/yolo26n"} <= set(slugs)
    assert slugs["test/coco/yolo11n"]["task"] == "detect"


def _raw_post(
    stack: Stack, headers: list[str], body_parts: list[bytes], pause_s: float = 0.0
) -> tuple[str, float]:
    """Send a request by hand on a socket; return the status line and seconds to the first byte."""
    import socket
    import time

    host, port = "127.0.0.1", stack.settings.port
    with socket.create_connection((host, port), timeout=10) as sock:
        head = [
            f"POST /api/models/{SLUG}/predict HTTP/1.1",
            f"Host: {host}:{port}",
            f"Authorization: Bearer {stack.api_key}",
            *headers,
            "",
            "",
        ]
        sock.sendall("\r\n".join(head).encode())
        start = time.monotonic()
        try:
            for part in body_parts:
                sock.sendall(part)
                time.sleep(pause_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what we want
        reply = sock.recv(65536).decode(errors="replace")
        return reply.split("\r\n", 1)[0], time.monotonic() - start


def test_an_announced_101_mb_body_gets_413_before_it_is_sent(stack: Stack) -> None:
    """Over the largest upload (a 100 MB video; an image over 10 MB is refused once read)."""
    status, elapsed = _raw_post(
        stack, ["Content-Type: multipart/form-data; boundary=x", "Content-Length: 105906176"], [b"--x\r\n"]
    )
    assert status.startswith("HTTP/1.1 413 ")
    assert elapsed < 1.0


def test_a_chunked_image_over_10_mb_is_413(stack: Stack) -> None:
    """A well-formed multipart image upload of 12 MB with no Content-Length: 413, the image limit.
    It is read (spooled to disk) first: the body limit is the video's 100 MB, at which a chunked
    body is cut while it streams in (test_video.py::test_a_chunked_101_mb_video_is_cut_at_the_limit)."""
    head = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    chunk = b"\0" * (1024 * 1024)
    tail = b"\r\n--x--\r\n"
    body = [head] + [chunk] * 12 + [tail]
    parts = [f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in body] + [b"0\r\n\r\n"]
    status, _ = _raw_post(
        stack, ["Content-Type: multipart/form-data; boundary=x", "Transfer-Encoding: chunked"], parts
    )
    assert status.startswith("HTTP/1.1 413 ")


def test_a_key_in_the_query_string_is_ignored(stack: Stack, bus: Path) -> None:
    """Keys in URLs end up in access logs and browser history: only the Authorization header counts."""
    r = post(
        stack,
        f"/api/models/{SLUG}/predict?api_key={stack.api_key}&key={stack.api_key}",
        files={"file": bus.read_bytes()},
    )
    assert_error(r, 401, "Unauthorized", "Bearer")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert stack.api_key not in r.text
