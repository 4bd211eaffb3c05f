"""`POST /api/preview`: an upload decoded as predict decodes it, as a JPEG; in process, no Triton."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.frontend.test_scopes_tokens import App, app_with, bearer
from tests.helpers.formats import bomb, encode, rotated

PREVIEW = "/api/preview"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    yield from app_with(tmp_path, max_upload_bytes=1024 * 1024)


def _rgb() -> np.ndarray:
    """A smooth picture (what JPEG keeps well), 64x48."""
    small = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.asarray(cv2.resize(small, (64, 48), interpolation=cv2.INTER_LINEAR), np.uint8)


def _decoded(client: TestClient, key: str, data: bytes) -> np.ndarray:
    response = client.post(PREVIEW, headers=bearer(key), files={"file": ("x", data)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "no-store"
    return np.asarray(cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR))


@pytest.mark.parametrize("fmt", ["heic", "tiff", "jp2", "dng", "avif", "bmp", "png"])
def test_each_format_previews_at_its_decoded_size(app: App, fmt: str) -> None:
    assert _decoded(app.client, app.key(), encode(_rgb(), fmt)).shape == (48, 64, 3)


def test_exif_orientation_is_applied_as_predict_applies_it(app: App) -> None:
    assert _decoded(app.client, app.key(), rotated(_rgb(), "heic")).shape == (64, 48, 3)


def test_the_pixels_are_predicts_pixels(app: App) -> None:
    from frontend.serving.imaging import decode_image

    data = encode(_rgb(), "tiff")
    expected = decode_image(data, 10**8)
    got = _decoded(app.client, app.key(), data)
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 4  # JPEG at quality 90


def test_it_takes_a_predict_key(app: App) -> None:
    data = encode(_rgb(), "png")
    assert app.client.post(PREVIEW, files={"file": ("x", data)}).status_code == 401
    assert (
        app.client.post(PREVIEW, headers=bearer("tri_wrong"), files={"file": ("x", data)}).status_code == 401
    )
    key = app.key(scopes=["deployments"])
    assert app.client.post(PREVIEW, headers=bearer(key), files={"file": ("x", data)}).status_code == 403


def test_it_spends_a_request_of_the_plan(app: App) -> None:
    key = app.key()
    response = app.client.post(PREVIEW, headers=bearer(key), files={"file": ("x", encode(_rgb(), "png"))})
    assert response.status_code == 200
    assert app.client.get("/api/usage", headers=bearer(key)).json()["remaining"]["minute"] == 9


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"hello, not an image", 400),
        (b"", 400),
        (encode(_rgb(), "tiff")[:200], 400),
        (bomb("tiff"), 400),  # as predict answers a bomb: dimensions refused before any pixel
        (bomb("heic"), 400),
        (b"\xff\xd8\xff" + b"\0" * (1024 * 1024), 413),  # over TRIDENT_MAX_UPLOAD_BYTES (1 MB here)
    ],
    ids=["text", "empty", "truncated-tiff", "tiff-bomb", "heic-bomb", "too-large"],
)
def test_what_predict_refuses_is_refused(app: App, data: bytes, status: int) -> None:
    response = app.client.post(PREVIEW, headers=bearer(app.key()), files={"file": ("x", data)})
    assert response.status_code == status, response.text
    assert "error" in response.json()


def test_no_file_is_a_400(app: App) -> None:
    key = app.key()
    assert app.client.post(PREVIEW, headers=bearer(key), data={"x": "1"}).status_code == 400
    assert app.client.post(PREVIEW, headers=bearer(key), content=b"raw").status_code == 400
