"""The Test tab's Streams page in Chromium: it lists the key's streams with their status and shows
one live, its annotated preview (an <img> on the MJPEG preview) and its events counted, on the
session cookie alone: the key is pasted once and kept nowhere, and the session may watch streams
but not change them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from store.keys import KeyStore
from tests.helpers.camera import MjpegCamera
from tests.helpers.clips import read_frames, write_clip
from tests.helpers.stack import Stack
from tests.integration.test_streams import DETECT, FPS, Frontend, api, create
from tests.integration.test_streams import model as model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def frontend(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Frontend]:
    fe = Frontend(stack, tmp_path_factory.mktemp("streams-page"))
    yield fe
    fe.stop()


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MjpegCamera]:
    clip = write_clip("detect", tmp_path_factory.mktemp("page-clip") / "detect.mp4", frames=16)
    cam = MjpegCamera(read_frames(clip), FPS)
    cam.start()
    yield cam
    cam.stop()


def test_the_streams_page_lists_a_stream_and_shows_it_live(
    browser: Browser, frontend: Frontend, model: str, camera: MjpegCamera, tmp_path: Path
) -> None:
    key = KeyStore(frontend.database).create_key("watcher", "test", scopes=("predict", "streams"))[0]
    r = create(frontend, key, camera.url, max_fps=4)
    assert r.status_code == 201, r.text
    stream = r.json()["id"]
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{frontend.base}/streams")
        page.fill("#key-input", key)
        page.click("#key-form button[type=submit]")
        item = page.locator(f'li[data-stream="{stream}"]')
        expect(item).to_contain_text(DETECT)
        expect(item.locator("[data-status]")).to_have_text("running", timeout=20_000)
        item.locator("a").click()
        expect(page.locator("#live")).to_be_visible()
        # polled from here: `wait_for_function` evaluates a string, which the page's policy forbids
        poll(lambda: int(page.locator("#live-events").get_attribute("data-count") or 0) >= 3)
        # the preview <img> shows frames: decoded at the camera's size, and changing
        preview = page.locator("#live-preview")
        poll(lambda: preview.evaluate("img => img.naturalWidth") > 0)
        width = preview.evaluate("img => img.naturalWidth")
        assert width == camera_width(camera)
        first = preview.screenshot()
        page.wait_for_timeout(1200)
        assert preview.screenshot() != first, "the preview did not change"
        # the session watches but may not change a stream, and the key is nowhere in the browser
        refused = page.evaluate(
            f"fetch('/api/streams/{stream}/pause', {{method: 'POST', credentials: 'same-origin'}})"
            ".then(r => r.status)"
        )
        assert refused == 403
        stored = page.evaluate(
            "JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie, location.href])"
        )
        assert key not in stored and key not in str(context.cookies())
        assert not errors, errors
    finally:
        context.close()
        api(frontend, key, "DELETE", f"/api/streams/{stream}")


def poll(check: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def camera_width(camera: MjpegCamera) -> int:
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(camera.jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    return int(image.shape[1])
