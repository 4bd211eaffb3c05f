"""The Test tab on a video, in Chromium: it plays in a <video>, a progress bar follows the NDJSON
stream, each processed frame is listed, and the frame the player shows gets that frame's
predictions drawn over it (requestVideoFrameCallback)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import DETECT, TestTab

pytestmark = pytest.mark.integration
FRAMES = 30
FPS = 10


@pytest.fixture(scope="module")
def webm(tmp_path_factory: pytest.TempPathFactory, bus: Path) -> Path:
    """A 30-frame VP8 WebM (what Chromium plays) of 640x480 crops sliding over bus.jpg."""
    path = tmp_path_factory.mktemp("browser-video") / "bus.webm"
    image = cv2.imread(str(bus))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), FPS, (640, 480))
    for t in range(FRAMES):
        writer.write(np.ascontiguousarray(image[t * 8 : t * 8 + 480, t * 5 : t * 5 + 640]))
    writer.release()
    return path


def wait_dataset(page: Page, key: str, wanted: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while (value := page.eval_on_selector("#stage", f"el => el.dataset.{key} || ''")) != wanted:
        assert time.monotonic() < deadline, f"#stage data-{key} is {value!r}, not {wanted!r}"
        page.wait_for_timeout(100)


def test_a_video_plays_with_its_predictions_drawn_in_sync(tab: TestTab, webm: Path) -> None:
    tab.open(DETECT)
    page = tab.page
    with page.expect_response(lambda r: r.url.endswith("/predict?format=seed"), timeout=120_000) as answer:
        page.set_input_files("#file", str(webm))
    assert answer.value.status == 200
    assert answer.value.headers["content-type"].startswith("application/x-ndjson")
    wait_dataset(page, "progress", "1")  # the bar filled as the lines arrived
    assert tab.stage["frames"] == str(FRAMES)
    items = page.locator("#video-frames li")
    assert items.count() == FRAMES
    assert page.locator("#video").is_visible()
    assert page.locator("#canvas").is_hidden()

    items.nth(12).click()  # seeks the player to frame 12; its predictions are drawn
    wait_dataset(page, "shownFrame", "12")
    assert int(tab.stage["boxes"]) > 0
    assert page.locator("#video-frames li.hot").get_attribute("data-frame") == "12"
    shown = page.locator("#predictions tbody tr").count()
    assert shown == int(tab.stage["boxes"])

    # playing (at half speed: 6 s), the drawn frame follows the player's within a frame or two
    samples = []
    page.eval_on_selector("#video", "v => { v.currentTime = 0; v.playbackRate = 0.5; return v.play(); }")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ended, at, shown = page.eval_on_selector(
            "#video", "v => [v.ended, v.currentTime, document.getElementById('stage').dataset.shownFrame]"
        )
        if ended:
            break
        samples.append((int(at * FPS), int(shown)))
        page.wait_for_timeout(50)
    assert len({shown for _, shown in samples}) >= 5, samples
    assert all(abs(playing - shown) <= 2 for playing, shown in samples), samples
    tab.screenshot("test-tab-video.png")
