"""`source` through the predict call on the real stack: base64 and URL images give the same answer
as the upload; the session's frontend (private addresses refused, the default) never reaches a
local server, a frontend with `TRIDENT_SOURCE_ALLOW_PRIVATE=1` does. Traffic stays on 127.0.0.1.

The refusal cases one by one (schemes, redirects, slow and endless bodies, IPv6, ...) are
`tests/frontend/test_source.py`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.image_server import ImageServer, serving
from tests.helpers.stack import Stack, assert_error
from trident import runtime

pytestmark = pytest.mark.integration
SLUG = "test/coco/yolo11n"


@pytest.fixture
def image_server(bus: Path) -> Iterator[ImageServer]:
    with serving(bus.read_bytes()) as server:
        yield server


def predict_source(base: str, key: str, source: str, api_format: str = "seed") -> httpx.Response:
    return httpx.post(
        f"{base}/api/models/{SLUG}/predict?format={api_format}",
        headers={"Authorization": f"Bearer {key}"},
        files={"source": (None, source)},
        data={"conf": "0.05"},
        timeout=60,
    )


def test_small_base64_image_with_and_without_the_data_prefix(stack: Stack, tmp_path: Path, bus: Path) -> None:
    import cv2

    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(bus)), (48, 64)), [cv2.IMWRITE_JPEG_QUALITY, 60])
    encoded = base64.b64encode(small.read_bytes()).decode()
    assert len(f"data:image/jpeg;base64,{encoded}") <= 4096
    uploaded = stack.predict(SLUG, small, conf=0.05).json()
    assert len(uploaded["predictions"]) >= 1
    for value in (encoded, f"data:image/jpeg;base64,{encoded}"):
        answer = predict_source(stack.base_url, stack.api_key, value).json()
        assert answer["image"] == uploaded["image"] == {"width": 48, "height": 64}
        assert answer["predictions"] == uploaded["predictions"]


def test_invalid_base64_and_both_inputs_are_400(stack: Stack, bus: Path) -> None:
    assert_error(
        predict_source(stack.base_url, stack.api_key, "not base64 !"), 400, "Invalid request", "base64"
    )
    with bus.open("rb") as f:
        both = httpx.post(
            f"{stack.base_url}/api/models/{SLUG}/predict",
            headers={"Authorization": f"Bearer {stack.api_key}"},
            files={"file": ("bus.jpg", f), "source": (None, "aGVsbG8=")},
            timeout=60,
        )
    assert_error(both, 400, "Invalid request", "either 'file' or 'source'")
    too_long = predict_source(stack.base_url, stack.api_key, "A" * 4097)
    assert_error(too_long, 400, "Invalid request", "4096")


def test_a_loopback_url_is_refused_by_default_and_never_fetched(
    stack: Stack, image_server: ImageServer
) -> None:
    response = predict_source(stack.base_url, stack.api_key, image_server.url)
    assert_error(response, 400, "Invalid request", "127.0.0.1 is loopback; private addresses are refused")
    platform = predict_source(stack.base_url, stack.api_key, image_server.url, api_format="platform")
    assert platform.status_code == 400
    assert platform.json() == {
        "error": "Invalid request: source: the address 127.0.0.1 is loopback; private addresses are refused"
    }
    assert image_server.requests == 0


def test_a_url_source_answers_as_the_upload_where_private_addresses_are_allowed(
    stack: Stack, bus: Path, image_server: ImageServer, tmp_path: Path
) -> None:
    process, base = stack.spawn_frontend(tmp_path / "frontend.log", TRIDENT_SOURCE_ALLOW_PRIVATE="1")
    try:
        uploaded = stack.predict(SLUG, bus, conf=0.05).json()["predictions"]
        fetched = predict_source(base, stack.api_key, image_server.url)
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["predictions"] == uploaded and len(uploaded) >= 5
        assert image_server.requests == 1
    finally:
        runtime.stop(process)
