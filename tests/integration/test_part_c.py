# ruff: noqa: E501  (the case table keeps one greppable line per case)
"""Reliability Part C (shared/reference/reliability.md), case by case, adapted to Trident.

Trident speaks the Ultralytics Platform's API, so Part C's words map to Trident's:
- a "problem" (`application/problem+json` with a stable `code`) is the Platform's envelope
  `{"success": false, "error": {"code", "message", "detail"}}`, checked by `assert_error`;
- 415 `unsupported_media_type` is 400 "Invalid image": the Platform answers 400 for any file it
  cannot use, and its clients branch on that, so Trident does the same;
- `backend_unavailable` / `backend_timeout` are 503 "Service unavailable" / 504 "Inference timeout";
  `quota-exceeded` is 429 "Rate limited"; `/v1/detect` is `POST /api/models/{o}/{p}/{m}/predict`;
- "no Triton call" is read from Triton itself: its request counters for the model do not move.

Where an existing test already covers a case the table points to it (and
`tests/test_part_c_table.py` checks every pointer); the rest are tested here.

| # | case | tests |
|---|---|---|
| 1 | truncated JPEG | test_case_01_truncated_jpeg_is_400_without_a_triton_call; tests/integration/test_errors.py::test_truncated_jpeg_is_400 |
| 2 | not an image, lying Content-Type | test_case_02_not_an_image_is_400_whatever_its_name_and_type (400, not 415: see above) |
| 3 | decodable but disallowed formats (TIFF and JPEG 2000 are served since issue 30: EPS, PDF, ICO, PPM, TGA, PSD, FITS are not) | test_case_03_disallowed_formats_are_400_without_a_triton_call; tests/frontend/test_hostile_images.py::test_case_03_eps_never_spawns_ghostscript; tests/frontend/test_imaging.py::test_formats_outside_the_allowlist_are_refused_without_decoding |
| 4 | 101 MB announced by Content-Length (videos may be 100 MB, so an image over 10 MB is refused once spooled) | tests/integration/test_errors.py::test_an_announced_101_mb_body_gets_413_before_it_is_sent (413 before the body is sent; bound there 1 s, not 200 ms, on a shared 2-core CI machine); tests/integration/test_errors.py::test_upload_over_10_mb_is_413_and_at_10_mb_is_read |
| 5 | oversize chunked, lying Content-Length | tests/integration/test_errors.py::test_a_chunked_image_over_10_mb_is_413 (read, then refused: the body limit is the video's 100 MB); tests/integration/test_video.py::test_a_chunked_101_mb_video_is_cut_at_the_limit; test_case_05_a_lying_content_length_is_refused_in_bounded_memory |
| 6 | decompression bomb | tests/frontend/test_hostile_images.py::test_case_06_bombs_are_refused_from_the_header_in_bounded_memory; test_case_06_bombs_over_the_wire_are_400_without_a_triton_call |
| 7 | dimension boundaries, degenerate sizes | test_case_07_degenerate_sizes_are_served_with_boxes_inside_the_image; test_case_07_a_100_mp_image_is_refused; tests/frontend/test_imaging.py::test_image_at_the_pixel_limit_is_accepted_and_one_more_is_not (Trident limits pixels, 40 MP, not sides: there is no max_side_px) |
| 8 | animated GIF, frame bombs | tests/frontend/test_imaging.py::test_a_thousand_frame_gif_decodes_only_its_first_frame; test_case_08_a_gif_frame_bomb_decodes_only_frame_0 |
| 9 | EXIF orientation | test_case_09_exif_rotation_and_a_rotated_image_give_the_same_answer; tests/frontend/test_imaging.py::test_exif_orientation_is_applied |
| 10 | mode zoo | test_case_10_every_image_mode_is_served; tests/frontend/test_imaging.py::test_every_image_mode_decodes_to_three_channel_bgr; tests/postprocess/test_letterbox.py::test_model_input_is_rgb_chw_unit_range |
| 11 | malformed request envelope | test_case_11_malformed_envelopes_are_4xx_never_500; tests/integration/test_errors.py::test_missing_file_is_400; tests/integration/test_errors.py::test_not_multipart_is_400 (the Platform API has no JSON/base64 variant: a JSON body is 400; unknown query parameters are ignored, 200, so clients that send extras keep working) |
| 12 | polyglot, hostile metadata | test_case_12_polyglots_and_hostile_metadata_are_served_and_never_echoed; tests/frontend/test_imaging.py::test_trailing_data_after_a_jpeg_is_ignored |
| 13 | missing or malformed credentials | tests/frontend/test_auth.py::test_garbage_credentials_cause_no_database_or_redis_call; tests/frontend/test_auth.py::test_a_well_formed_unknown_key_is_looked_up_and_counted; tests/integration/test_errors.py::test_missing_key_is_401; tests/integration/test_errors.py::test_wrong_key_is_401; tests/integration/test_errors.py::test_a_key_in_the_query_string_is_ignored |
| 14 | revoked, unknown, out-of-scope keys | tests/integration/test_access.py::test_a_revoked_key_is_refused_at_once_and_like_an_unknown_one; tests/trident/test_keys.py::test_revoked_and_unknown_keys_take_the_same_time ; out of scope: 403 in both contracts, tests/frontend/test_scopes_tokens.py::test_a_key_without_predict_gets_403_in_both_contracts (a model the key may not see is still 404 exactly like a missing one, tests/integration/test_access.py::test_private_models_are_visible_to_their_owner_only) |
| 15 | key hygiene | tests/integration/test_access.py::test_raw_keys_never_reach_logs_the_database_or_responses; tests/trident/test_keys.py::test_only_a_hash_is_stored; tests/trident/test_keys.py::test_the_verifier_compares_hashes_with_compare_digest; test_case_15_no_metric_holds_a_key |
| 16 | burst vs quota across processes | tests/integration/test_access.py::test_two_workers_sharing_redis_admit_exactly_the_plan; tests/integration/test_access.py::test_negative_control_in_memory_counters_over_admit_across_workers |
| 17 | header arithmetic | tests/frontend/test_ratelimit.py::test_headers_count_down_and_policy_stays_constant; tests/frontend/test_ratelimit.py::test_ten_per_minute_then_429_with_retry_after; tests/integration/test_access.py::test_every_response_carries_the_limit_state_and_429_says_when |
| 18 | isolation, no quota probing, failed auths per IP | test_case_18_keys_are_isolated_and_failed_auths_cannot_probe_quota; test_case_18_failed_auths_are_limited_per_ip; tests/frontend/test_ratelimit.py::test_failed_auths_per_ip_401_up_to_the_limit_then_429_until_the_minute_ends; tests/integration/test_access.py::test_failed_auth_spends_no_quota |
| 19 | Redis outage and recovery | test_case_19_redis_stopped_mid_run_fails_closed_then_recovers; tests/integration/test_access.py::test_redis_down_fails_closed_with_503_then_recovers |
| 20 | Triton down, then back | test_case_20_a_frontend_started_without_triton_serves_once_it_is_up; tests/integration/test_lifecycle.py::test_triton_down_gives_503_fast_and_recovers_without_restart |
| 21 | Triton slow (deadline) | tests/integration/test_faults.py::test_a_triton_deadline_is_a_fast_504_and_the_worker_stays_responsive (a 10 ms deadline on a real CPU model instead of a sleeping one; Triton-side cancellation is not observed) |
| 22 | Triton error table | tests/frontend/test_triton_errors.py::test_triton_failures_map_to_documented_statuses; tests/frontend/test_triton_errors.py::test_malformed_model_outputs_are_a_500_not_a_crash; tests/frontend/test_triton_errors.py::test_nan_scores_are_dropped_not_served; tests/frontend/test_triton_errors.py::test_the_error_table_leaks_neither_memory_nor_file_descriptors; tests/frontend/test_triton_errors.py::test_negative_control_the_leak_probe_sees_a_deliberate_leak |
| 23 | overload shedding, then soak | scripts/overload.py: minutes of load, not part of `make test`; it prints its figures and exits non-zero when a bound fails, and `--inject-leak` proves the RSS check fires |
| 24 | graceful shutdown with requests in flight | tests/integration/test_faults.py::test_sigterm_lets_in_flight_requests_finish (20 in flight, not 50, on 2 CPU threads; `/readyz` during the drain is not asserted) |
| 25 | schema-driven fuzz | tests/integration/test_schema_fuzz.py::test_no_server_errors_and_only_documented_statuses (valid, unknown and no key: `ignored_auth`); test_case_25_an_unsupported_method_is_405_with_allow |
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from core.slug import Slug
from store.keys import key_checksum
from tests.helpers.hostile import decompression_bombs, disallowed_formats, encode, png_of_zeros
from tests.helpers.stack import (
    Stack,
    assert_error,
    free_port,
    in_one_minute,
    own_triton,
    port_outside_ephemeral_range,
    start_redis,
)
from trident import runtime

pytestmark = pytest.mark.integration
SLUG = "test/coco/yolo11n"
TINY = Path(__file__).parents[1] / "fixtures" / "tiny.png"
LIMIT = 10 * 1024 * 1024


# --- helpers -----------------------------------------------------------------------------------


def send(
    base: str,
    data: bytes,
    key: str | None,
    filename: str = "image.jpg",
    content_type: str = "image/jpeg",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{base}/api/models/{SLUG}/predict",
        headers={**auth, **(headers or {})},
        files={"file": (filename, data, content_type)},
        timeout=60,
    )


def triton_calls(stack: Stack, slug: str = SLUG) -> float:
    """Inference requests Triton has seen for this model (successes and failures), from its metrics."""
    name = Slug.parse(slug).triton_name
    text = httpx.get(f"http://127.0.0.1:{stack.settings.triton_metrics_port}/metrics").text
    total = 0.0
    for line in text.splitlines():
        counter = line.startswith(("nv_inference_request_success{", "nv_inference_request_failure{"))
        if counter and f'model="{name}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def forged(key: str) -> str:
    """The same key id with another secret and a valid checksum: looked up, then refused."""
    body = key[:12] + ("0" * 32 if key[12:44] != "0" * 32 else "1" * 32)
    return body + key_checksum(body)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# --- the cases -----------------------------------------------------------------------------------


def test_case_01_truncated_jpeg_is_400_without_a_triton_call(stack: Stack, bus: Path) -> None:
    from PIL import ImageFile

    before = triton_calls(stack)
    r = send(stack.base_url, bus.read_bytes()[: int(bus.stat().st_size * 0.6)], stack.api_key)
    assert_error(r, 400, "Invalid image", "could not be decoded")
    assert triton_calls(stack) == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing in the frontend's imports turned it on
    assert send(stack.base_url, bus.read_bytes(), stack.api_key).status_code == 200
    deadline = time.monotonic() + 5  # Triton's counters can show a call a moment after its answer
    while triton_calls(stack) < before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert triton_calls(stack) == before + 1  # the counter does move for a real call


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\0" * 40,
        b"just some text, named like a photo",
        b"\xff",
    ],
    ids=["pdf", "zip", "text", "one-byte"],
)
def test_case_02_not_an_image_is_400_whatever_its_name_and_type(stack: Stack, data: bytes) -> None:
    before = triton_calls(stack)
    r = send(stack.base_url, data, stack.api_key, filename="photo.jpg", content_type="image/jpeg")
    assert_error(r, 400, "Invalid image", "unsupported file type")
    assert r.json()["error"]["code"] == "invalid_image"
    assert triton_calls(stack) == before


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return decompression_bombs()


@pytest.mark.parametrize("fmt", ["EPS", "PDF", "ICO", "PPM", "TGA", "PSD", "FITS"])
def test_case_03_disallowed_formats_are_400_without_a_triton_call(stack: Stack, fmt: str) -> None:
    before = triton_calls(stack)
    assert_error(
        send(stack.base_url, disallowed_formats()[fmt], stack.api_key), 400, "Invalid image", "unsupported"
    )
    assert triton_calls(stack) == before


def _raw_exchange(port: int, head: bytes, body: bytes, chunk: int = 1 << 20) -> tuple[list[int], bool]:
    """Send `head` and `body` on one socket, then read until the server closes; return the status
    codes of every response seen and whether the connection ended (EOF or reset) within 20 s."""
    replies = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head)
        try:
            for i in range(0, len(body), chunk):
                sock.sendall(body[i : i + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped listening: what we want
        except TimeoutError:
            pass  # the server stopped reading; what it answered is read below
        try:
            while data := sock.recv(65536):
                replies += data
            closed = True
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            pass
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", replies)], closed


def test_case_05_a_lying_content_length_is_refused_in_bounded_memory(
    stack: Stack, bus: Path, tmp_path: Path
) -> None:
    """`Content-Length: 1000`, then 30 MB: a 400 or a closed connection, never 200 or 5xx; the
    frontend's peak memory grows by less than twice the upload limit, and it keeps serving."""
    process, base = stack.spawn_frontend(tmp_path / "liar.log")
    try:
        assert send(base, bus.read_bytes(), stack.api_key).status_code == 200  # warm: buffers exist
        peak_before = peak_rss_kib(process.pid)
        boundary = "lie"
        part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        body = part + bus.read_bytes() * (30 * 1024 * 1024 // bus.stat().st_size)
        head = (
            f"POST /api/models/{SLUG}/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {stack.api_key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 1000\r\n\r\n"
        ).encode()
        port = int(base.rsplit(":", 1)[1])
        statuses, closed = _raw_exchange(port, head, body)
        assert set(statuses) <= {400}, statuses
        assert statuses or closed, "neither an answer nor a closed connection"
        growth_mib = (peak_rss_kib(process.pid) - peak_before) / 1024
        assert growth_mib < 2 * LIMIT / 2**20, f"peak RSS grew {growth_mib:.1f} MiB"
        assert httpx.get(f"{base}/livez").status_code == 200
        assert send(base, bus.read_bytes(), stack.api_key).status_code == 200
    finally:
        runtime.stop(process)


def test_case_06_bombs_over_the_wire_are_400_without_a_triton_call(
    stack: Stack, bombs: dict[str, bytes]
) -> None:
    before = triton_calls(stack)
    for bomb in bombs.values():
        assert_error(send(stack.base_url, bomb, stack.api_key, filename="bomb.png"), 400, "Invalid image")
    assert triton_calls(stack) == before


@pytest.mark.parametrize(("width", "height"), [(1, 1), (1, 8192), (8192, 1)])
def test_case_07_degenerate_sizes_are_served_with_boxes_inside_the_image(
    stack: Stack, width: int, height: int
) -> None:
    gray = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    ok, png = cv2.imencode(".png", gray)
    assert ok
    r = send(stack.base_url, png.tobytes(), stack.api_key, filename="thin.png", headers=None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": width, "height": height}
    for p in body["predictions"]:
        box = p["box"]
        assert 0 <= box["x1"] <= box["x2"] <= width and 0 <= box["y1"] <= box["y2"] <= height, box


def test_case_07_a_100_mp_image_is_refused(stack: Stack) -> None:
    """Pillow only warns between 89 and 179 MP; Trident's own 40 MP limit refuses it first."""
    r = send(stack.base_url, png_of_zeros(10_000, 10_000), stack.api_key, filename="huge.png")
    assert_error(r, 400, "Invalid image", "10000x10000 pixels; the limit is 40000000")


def _gif_frame_bomb() -> bytes:
    """A 16x16 GIF whose second frame claims 65535x65535 (like Pillow's decompression_bomb_extents.gif)."""
    gif = encode(Image.new("P", (16, 16), 1), "GIF")
    assert gif.endswith(b";")
    huge = (0).to_bytes(2, "little") * 2 + (65535).to_bytes(2, "little") * 2
    frame = b"\x2c" + huge + b"\x00" + b"\x02\x02\x4c\x01\x00"  # descriptor + a token LZW stream
    return gif[:-1] + frame + b";"


def test_case_08_a_gif_frame_bomb_decodes_only_frame_0(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import GifImagePlugin

    from frontend.serving.imaging import decode_image

    seeks: list[int] = []
    original = GifImagePlugin.GifImageFile.seek

    def spy(self: GifImagePlugin.GifImageFile, frame: int) -> None:
        seeks.append(frame)
        original(self, frame)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "seek", spy)
    bomb = _gif_frame_bomb()
    assert decode_image(bomb, 40_000_000).shape == (16, 16, 3)
    assert seeks and set(seeks) == {0}
    r = send(stack.base_url, bomb, stack.api_key, filename="frames.gif", content_type="image/gif")
    assert r.status_code == 200, r.text
    assert r.json()["image"] == {"width": 16, "height": 16}


def test_case_09_exif_rotation_and_a_rotated_image_give_the_same_answer(stack: Stack, bus: Path) -> None:
    """bus.jpg tagged Orientation=6, and the same pixels rotated by hand (lossless PNG)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    tagged = encode(Image.open(bus), "JPEG", quality=95, exif=exif)
    stored = cv2.imdecode(np.frombuffer(tagged, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    upright = cv2.rotate(stored, cv2.ROTATE_90_CLOCKWISE)
    assert np.array_equal(cv2.imdecode(np.frombuffer(tagged, np.uint8), cv2.IMREAD_COLOR), upright)
    rotated = cv2.imencode(".png", upright)[1].tobytes()
    a = send(stack.base_url, tagged, stack.api_key).json()
    b = send(stack.base_url, rotated, stack.api_key, filename="rotated.png", content_type="image/png").json()
    assert a["image"] == b["image"] == {"width": 1080, "height": 810}
    assert a["predictions"] and a["predictions"] == b["predictions"]


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "L", "LA", "RGBA", "P", "1"])
def test_case_10_every_image_mode_is_served(stack: Stack, mode: str) -> None:
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray((np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype("<u2"))
    elif mode == "P":
        image = rgb.convert("P")
        image.info["transparency"] = 0
    else:
        image = rgb.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    r = send(stack.base_url, encode(image, fmt), stack.api_key, filename=f"m.{fmt.lower()}")
    assert r.status_code == 200, r.text
    assert r.json()["image"] == {"width": 64, "height": 48}


def _multipart(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    out = b""
    for name, data in parts:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def test_case_11_malformed_envelopes_are_4xx_never_500(stack: Stack) -> None:
    tiny = TINY.read_bytes()
    url = f"{stack.base_url}/api/models/{SLUG}/predict"
    auth = {"Authorization": f"Bearer {stack.api_key}"}

    def post(content: bytes, content_type: str, query: str = "") -> httpx.Response:
        return httpx.post(url + query, headers={**auth, "Content-Type": content_type}, content=content)

    cases = {
        "zero-byte body": post(b"", "multipart/form-data; boundary=x"),
        "two files": post(
            _multipart("x", [("file", tiny), ("file", tiny)]), "multipart/form-data; boundary=x"
        ),
        "wrong boundary": post(_multipart("x", [("file", tiny)]), "multipart/form-data; boundary=other"),
        "no boundary": post(_multipart("x", [("file", tiny)]), "multipart/form-data"),
        "json with base64": post(b'{"file": "!!not base64!!"}', "application/json"),
    }
    for name, r in cases.items():
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert r.json()["success"] is False and r.json()["error"]["message"], name
        assert "Traceback" not in r.text, name
    unknown = post(_multipart("x", [("file", tiny)]), "multipart/form-data; boundary=x", "?foo=1&conf2=3")
    assert unknown.status_code == 200, unknown.text  # unknown parameters are ignored


def _with_segments(jpeg: bytes, segments: list[bytes]) -> bytes:
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _segment(marker: int, payload: bytes) -> bytes:
    assert len(payload) <= 65533
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def test_case_12_polyglots_and_hostile_metadata_are_served_and_never_echoed(stack: Stack, bus: Path) -> None:
    clean = bus.read_bytes()
    exif = Image.Exif()
    exif[0x010E] = "<script>alert('exif')</script>"
    hostile = _with_segments(
        clean,
        [
            _segment(0xE1, exif.tobytes()),
            _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x><script>alert('xmp')</script>" + b"X" * 60_000),
            _segment(0xFE, b"<script>alert('comment')</script>" + b"C" * 60_000),
        ],
    )
    polyglot = clean + b"PK\x03\x04" + b"\0" * 26 + b"<html><script>alert('zip')</script></html>"
    expected = send(stack.base_url, clean, stack.api_key).json()["predictions"]
    assert expected
    filename = "<script>alert('name')</script>.jpg"
    for data in (hostile, polyglot):
        r = send(stack.base_url, data, stack.api_key, filename=filename)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "alert(" not in r.text and "<script" not in r.text
    log = (stack.log.parent / "frontend.log").read_text(errors="replace")
    assert "alert(" not in log and "XXXXXXXX" not in log and "CCCCCCCC" not in log


def test_case_15_no_metric_holds_a_key(stack: Stack) -> None:
    key = stack.create_key("hygiene", "test")
    assert stack.predict(SLUG, TINY, key=key).status_code == 200
    assert stack.predict(SLUG, TINY, key=forged(key)).status_code == 401
    metrics = httpx.get(f"{stack.base_url}/metrics").text
    assert 'plan="test"' in metrics  # the request was counted, under its plan
    for secret in (key[12:44], forged(key)[12:44]):
        assert secret not in metrics


def test_case_18_keys_are_isolated_and_failed_auths_cannot_probe_quota(stack: Stack) -> None:
    """A and B on the Free plan; 50 bad requests naming A's key id (and 10 with no key) neither
    spend nor reveal A's quota; exhausting A leaves B untouched."""

    def attempt(n: int) -> None:
        a, b = stack.create_key(f"iso-a-{n}", "free"), stack.create_key(f"iso-b-{n}", "free")
        assert [stack.predict(SLUG, TINY, key=a).headers["X-RateLimit-Remaining"] for _ in range(2)] == [
            "9",
            "8",
        ]
        for _ in range(50):
            r = stack.predict(SLUG, TINY, key=forged(a))
            assert_error(r, 401, "Unauthorized")
            assert not any(h.lower().startswith(("x-ratelimit", "ratelimit")) for h in r.headers)
        for _ in range(10):
            assert_error(send(stack.base_url, TINY.read_bytes(), None), 401, "Unauthorized")
        remaining = [stack.predict(SLUG, TINY, key=a) for _ in range(9)]
        assert [r.headers["X-RateLimit-Remaining"] for r in remaining] == [
            "7",
            "6",
            "5",
            "4",
            "3",
            "2",
            "1",
            "0",
            "0",
        ]
        assert [r.status_code for r in remaining] == [200] * 8 + [429]
        assert_error(remaining[-1], 429, "Rate limited")
        other = stack.predict(SLUG, TINY, key=b)
        assert other.status_code == 200 and other.headers["X-RateLimit-Remaining"] == "9"

    in_one_minute(attempt)


@pytest.fixture(params=["memory", "redis"])
def strict_frontend(request: pytest.FixtureRequest, stack: Stack, tmp_path: Path) -> Iterator[str]:
    """A frontend allowing 5 failed authentications per IP and minute, counted in memory or Redis."""
    server = None
    redis_url = ""
    if request.param == "redis":
        port = free_port()
        server = start_redis(port, tmp_path)
        redis_url = f"redis://127.0.0.1:{port}/0"
    process, base = stack.spawn_frontend(
        tmp_path / "strict.log", TRIDENT_AUTH_FAILURES_PER_MINUTE="5", TRIDENT_REDIS_URL=redis_url
    )
    try:
        yield base
    finally:
        runtime.stop(process)
        if server is not None:
            server.terminate()
            server.wait()


def test_case_18_failed_auths_are_limited_per_ip(strict_frontend: str, stack: Stack) -> None:
    """At the limit (5) refused keys get 401; past it 429 with Retry-After, for that IP only. A
    valid key from the same IP is still served, and keyless requests (no lookup) are not counted.
    The client IP comes from X-Forwarded-For, trusted from 127.0.0.1 (uvicorn's default)."""
    base = strict_frontend
    key = stack.create_key("per-ip", "test")
    bad = forged(key)
    tiny = TINY.read_bytes()

    def attempt(n: int) -> None:
        client, other = f"203.0.113.{7 + n}", f"198.51.100.{1 + n}"  # per attempt: its own counts

        def from_ip(ip: str, token: str | None) -> httpx.Response:
            return send(base, tiny, token, filename="tiny.png", headers={"X-Forwarded-For": ip})

        for _ in range(5):
            assert_error(from_ip(client, bad), 401, "Unauthorized", "not valid")
        past = from_ip(client, bad)
        assert_error(past, 429, "Rate limited", "too many failed authentications")
        assert 1 <= int(past.headers["Retry-After"]) <= 61
        assert_error(from_ip(client, bad), 429, "Rate limited")  # and it stays refused
        assert_error(from_ip(client, None), 401, "Unauthorized")  # no key: refused for free
        assert from_ip(client, key).status_code == 200  # a valid key is never locked out
        assert_error(from_ip(other, bad), 401, "Unauthorized")  # another address: its own count
        models = httpx.get(
            f"{base}/api/models", headers={"Authorization": f"Bearer {bad}", "X-Forwarded-For": client}
        )
        assert_error(models, 429, "Rate limited")  # the model list counts the same failures

    in_one_minute(attempt)


def test_case_19_redis_stopped_mid_run_fails_closed_then_recovers(stack: Stack, tmp_path: Path) -> None:
    """Documented policy: 503 + Retry-After within the Redis timeout, readiness unchanged; limits
    work again within 5 s of Redis returning, without a restart."""
    port = port_outside_ephemeral_range()  # the frontend retries it while the server is down
    server = start_redis(port, tmp_path)
    process, base = stack.spawn_frontend(
        tmp_path / "redis.log", TRIDENT_REDIS_URL=f"redis://127.0.0.1:{port}/0"
    )
    tiny = TINY.read_bytes()
    try:
        assert send(base, tiny, stack.api_key, filename="t.png").status_code == 200
        server.terminate()
        server.wait()
        for _ in range(3):
            start = time.monotonic()
            r = send(base, tiny, stack.api_key, filename="t.png")
            assert time.monotonic() - start < 1.0
            assert_error(r, 503, "Service unavailable", "rate-limit store")
            assert r.headers["Retry-After"] == "1"
        assert httpx.get(f"{base}/readyz").status_code == 200  # Triton is fine: stay in rotation
        server = start_redis(port, tmp_path)
        deadline = time.monotonic() + 5
        while (r := send(base, tiny, stack.api_key, filename="t.png")).status_code != 200:
            assert r.status_code == 503 and time.monotonic() < deadline, r.text
            time.sleep(0.1)
        assert r.headers["X-RateLimit-Limit"] == "1000000"
    finally:
        runtime.stop(process)
        server.terminate()
        server.wait()


def test_case_20_a_frontend_started_without_triton_serves_once_it_is_up(
    stack: Stack, bus: Path, tmp_path: Path
) -> None:
    with own_triton(stack, tmp_path, SLUG) as small:  # not started yet
        small.frontend, base = small.spawn_frontend(tmp_path / "no-triton.log", wait_for="/livez")
        ready = httpx.get(f"{base}/readyz")
        assert_error(ready, 503, "Service unavailable", "not ready")
        assert ready.headers["Retry-After"] == "1"
        for _ in range(3):
            start = time.monotonic()
            r = send(base, bus.read_bytes(), stack.api_key)
            assert time.monotonic() - start < 1.0, "a 503 must not wait for Triton"
            assert_error(r, 503, "Service unavailable")
            assert r.headers["Retry-After"].isdigit()
        small.start_triton()
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/readyz").status_code != 200:
            start = time.monotonic()
            assert httpx.get(f"{base}/livez").status_code == 200 and time.monotonic() - start < 0.5
            assert time.monotonic() < deadline, "readyz did not turn 200 without a restart"
            time.sleep(0.1)
        first = send(base, bus.read_bytes(), stack.api_key)
        assert first.status_code == 200, first.text
        assert first.json()["predictions"]


def test_case_25_an_unsupported_method_is_405_with_allow(stack: Stack) -> None:
    r = httpx.get(f"{stack.base_url}/api/models/{SLUG}/predict")
    assert_error(r, 405, "Method Not Allowed")
    assert r.headers["Allow"] == "POST"
