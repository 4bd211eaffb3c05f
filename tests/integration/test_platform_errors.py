"""Errors as the official SDK sees them: `APIError` with the right status and a body that is
exactly the Platform contract's `{"error": "<message>"}` (nothing else, no trace).

Against the Platform-format frontend of `test_platform_sdk.py`; 503 against a frontend of its
own whose Triton port answers nothing (the session's Triton keeps running).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ultralytics_platform import APIError, Platform

from store.keys import new_key
from tests.helpers.stack import RATE_PLAN, Stack, free_port, in_one_minute, post_predict
from trident import runtime

pytestmark = pytest.mark.integration
OWNER, PROJECT, MODEL = "test", "coco", "yolo11n"


def api_error(call: Callable[[], object], status: int) -> APIError:
    """The `APIError` `call` raises: `status`, and a body that is exactly `{"error": <non-empty str>}`."""
    with pytest.raises(APIError) as caught:
        call()
    error = caught.value
    assert error.status_code == status, error.body
    assert error.json is not None and isinstance(error.json, dict), error.body
    assert set(error.json) == {"error"}, error.body
    assert isinstance(error.json["error"], str) and error.json["error"].strip(), error.body
    assert "Traceback" not in error.body
    return error


def assert_platform_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body


def predict(client: Platform, image: Path, model: str = MODEL, **options: Any) -> Callable[[], object]:
    def call() -> object:
        with image.open("rb") as f:
            return client.models.predict(OWNER, PROJECT, model, body={"file": f, **options})

    return call


def test_not_an_image_is_400(sdk: Platform, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("hello, I am a text file and not a JPEG\n" * 20)
    api_error(predict(sdk, text), 400)


def test_an_out_of_range_option_is_400(sdk: Platform, bus: Path) -> None:
    api_error(predict(sdk, bus, conf=2), 400)
    api_error(predict(sdk, bus, decimals=11), 400)


@pytest.mark.parametrize("key", ["wrong", "", "valid-format"])
def test_a_wrong_or_missing_key_is_401(platform_url: str, stack: Stack, bus: Path, key: str) -> None:
    api_key = {"wrong": stack.api_key[:-2] + "zz", "": "", "valid-format": new_key()[0]}[key]
    with Platform(api_key=api_key, base_url=platform_url, max_retries=0) as client:
        api_error(predict(client, bus), 401)


def test_an_unknown_model_is_404(sdk: Platform, bus: Path) -> None:
    error = api_error(predict(sdk, bus, model="no-such-model"), 404)
    assert "Traceback" not in error.body


def test_an_upload_over_10_mb_is_413(sdk: Platform, tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + b"\0" * (11 * 1024 * 1024))
    api_error(predict(sdk, big), 413)


def test_past_the_plan_is_429_with_when_to_retry(
    stack: Stack, platform_url: str, bus: Path, tmp_path: Path
) -> None:
    def attempt(n: int) -> None:
        key = stack.create_key(f"platform-429-{n}", RATE_PLAN)  # 1 request a minute
        with Platform(api_key=key, base_url=platform_url, max_retries=0) as client:
            answer: Any = predict(client, bus)()
            assert answer["metadata"]["imageCount"] == 1
            api_error(predict(client, bus), 429)
        r = post_predict(platform_url, key, f"{OWNER}/{PROJECT}/{MODEL}", bus)
        assert_platform_error(r, 429)
        assert 1 <= int(r.headers["Retry-After"]) <= 60, r.headers
        assert 0 <= int(r.headers["X-RateLimit-Reset"]) <= 60, r.headers
        assert r.headers["X-RateLimit-Remaining"] == "0"

    in_one_minute(attempt)


@pytest.fixture
def tritonless(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """A Platform-format frontend whose Triton ports answer nothing."""
    process, base = stack.spawn_frontend(
        tmp_path / "tritonless.log",
        wait_for="/livez",
        TRIDENT_API_FORMAT="platform",
        TRIDENT_TRITON_GRPC_PORT=str(free_port()),
        TRIDENT_TRITON_HTTP_PORT=str(free_port()),
    )
    try:
        yield base
    finally:
        runtime.stop(process)


def test_triton_unreachable_is_503(stack: Stack, tritonless: str, bus: Path) -> None:
    with Platform(api_key=stack.api_key, base_url=tritonless, max_retries=0) as client:
        api_error(predict(client, bus), 503)
        api_error(lambda: client.models.retrieve(OWNER, PROJECT, MODEL), 503)
    r = post_predict(tritonless, stack.api_key, f"{OWNER}/{PROJECT}/{MODEL}", bus)
    assert_platform_error(r, 503)
    assert int(r.headers["Retry-After"]) >= 1


# models.delete / files, projects.*, account.summary are implemented for uploads (test_uploads.py)
UNIMPLEMENTED: dict[str, Callable[[Platform], object]] = {
    "models.clone": lambda c: c.models.clone(OWNER, PROJECT, MODEL, project_body="elsewhere"),
    "models.training": lambda c: c.models.training(OWNER, PROJECT, MODEL),
}


@pytest.mark.parametrize("call", list(UNIMPLEMENTED))
def test_an_sdk_call_trident_does_not_implement_is_404_in_the_contracts_shape(
    sdk: Platform, call: str
) -> None:
    api_error(lambda: UNIMPLEMENTED[call](sdk), 404)
