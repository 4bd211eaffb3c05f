"""The Test tab on a video, in Chromium: it plays in a <video>, a progress bar follows the NDJSON
stream, each processed frame is listed, and the frame the player shows gets that frame's
predictions drawn over it (requestVideoFrameCallback). With "Track objects", each box is drawn
with its id, in its id's colour, and a trail of its last centres."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import DETECT, EDGE_PIXELS, PREDICT, TestTab, id_colour
from tests.helpers.clips import to_webm, write_clip

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


TRACK_FRAMES = 24  # 2.4 s of moving shapes at 10 fps
TRAIL = 30  # frames a trail spans (draw.js)


@pytest.fixture(scope="module")
def shapes_webm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clip of shapes that move, cross and hide (`tests.helpers.clips`), as a WebM Chromium plays."""
    folder = tmp_path_factory.mktemp("browser-track")
    clip = write_clip("detect", folder / "shapes.mp4", frames=TRACK_FRAMES, fps=FPS)
    return to_webm(clip, folder / "shapes.webm", FPS)


def expected_trails(frames: list[dict[str, Any]], index: int) -> int:
    """Ids of frame `index` seen in at least two of the last `TRAIL` processed frames (it included)."""
    seen: dict[int, int] = {}
    for frame in frames[max(index - TRAIL + 1, 0) : index + 1]:
        for p in frame["predictions"]:
            seen[p["track_id"]] = seen.get(p["track_id"], 0) + 1
    return sum(seen[p["track_id"]] >= 2 for p in frames[index]["predictions"])


def test_a_tracked_video_draws_each_frames_ids_and_trails(
    tab: TestTab, shapes_model: str, shapes_webm: Path
) -> None:
    tab.open(shapes_model)
    page = tab.page
    page.wait_for_selector("#track-controls:not([hidden])")  # shown once the model's task is known
    page.check("#track")
    page.select_option("#tracker", "bytetrack")
    with page.expect_response(lambda r: r.url.endswith(PREDICT), timeout=120_000) as answer:
        page.set_input_files("#file", str(shapes_webm))
    assert answer.value.status == 200
    wait_dataset(page, "progress", "1")
    sent = tab.sent()
    assert (sent["track"], sent["tracker"]) == ("true", "bytetrack")
    lines = [json.loads(line) for line in answer.value.text().splitlines() if line.strip()]
    frames = [line for line in lines if "frame" in line]
    assert [f["frame"] for f in frames] == list(range(TRACK_FRAMES))
    assert all("track_id" in p for f in frames for p in f["predictions"])
    # the overlay covers the picture exactly (a square video is taller than the stage's canvas rule)
    assert page.locator("#video-overlay").bounding_box() == page.locator("#video").bounding_box()

    for index in (3, 12, TRACK_FRAMES - 1):
        page.locator("#video-frames li").nth(index).click()  # seeks the player to that frame
        wait_dataset(page, "shownFrame", str(index))
        predictions = frames[index]["predictions"]
        ids = [p["track_id"] for p in predictions]
        assert len(ids) >= 3, f"frame {index}: too few tracked boxes to check"
        stage = tab.stage
        assert stage["ids"] == ",".join(map(str, ids))  # the answer's ids, each labelled
        assert int(stage["trails"]) == expected_trails(frames, index) > 0
        boxes = [[p["box"][k] for k in ("x1", "y1", "x2", "y2")] for p in predictions]
        edges = page.eval_on_selector("#video-overlay", EDGE_PIXELS, boxes)
        # each box is stroked where the answer put it, in its id's colour (unless a later box
        # or label covers that pixel)
        coloured = sum(tuple(px) == (*id_colour(i), 255) for px, i in zip(edges, ids, strict=True))
        assert coloured >= max(len(ids) // 2, 2), (edges, ids)
        label = page.locator("#predictions tbody tr").first.locator(".cls")
        assert label.text_content() == f"#{ids[0]} {predictions[0]['class']}"
    tab.screenshot("test-tab-video-track.png")
