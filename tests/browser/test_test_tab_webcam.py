"""The Test tab's Webcam source, in a Chromium whose camera is a generated clip.

Chromium's fake camera (`--use-fake-device-for-media-stream`) plays a `.y4m` of shapes that move,
cross and hide (`tests.helpers.clips`), and its fake prompt allows it. With "Track objects", the
page sends frame after frame (never two at once) in a tracking session; what it draws for a
frame must be the ids and boxes the API answered for that frame, the session's frame count
advances, ids persist from frame to frame, a slider moved starts a new session (the server binds
one to its options), and Stop ends the camera and the session. Capture predicts one frame
without the session, as a still.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Playwright, Response

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, EDGE_PIXELS, PREDICT, TestTab, id_colour
from tests.helpers.clips import to_y4m, write_clip
from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration
FPS = 10
FRAMES = 40  # the camera loops over 4 s of the clip
SNAPSHOTS = 6  # answers drawn and checked
# what the page shows of the latest answer (the stage's data-cam-*) and the overlay's colour at
# each drawn box's left edge, read in one go: no answer can be drawn in between
SNAPSHOT = f"""stage => {{
  const shown = {{...stage.dataset}};
  const boxes = JSON.parse(shown.camTracks || "[]").map((t) => t.slice(1));
  const canvas = document.getElementById("webcam-overlay");
  return [shown, boxes.length ? ({EDGE_PIXELS})(canvas, boxes) : []];
}}"""


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser-webcam")
    clip = write_clip("detect", folder / "camera.mp4", frames=FRAMES, fps=FPS, seed=1)
    return to_y4m(clip, folder / "camera.y4m", FPS)


@pytest.fixture(scope="module")
def camera_browser(playwright: Playwright, camera_clip: Path) -> Iterator[Browser]:
    """A Chromium of its own whose camera plays `camera_clip`, allowed without a prompt."""
    camera = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_clip}",
    ]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *camera])
    yield browser
    browser.close()


@pytest.fixture
def cam(camera_browser: Browser, stack: Stack) -> Iterator[TestTab]:
    context = camera_browser.new_context(viewport={"width": 1280, "height": 900})
    tab = TestTab(context.new_page(), stack.base_url, stack.api_key)
    try:
        yield tab
    finally:
        context.close()
    assert tab.unexpected_errors() == [], "the browser console reported errors"


def shown(tab: TestTab) -> dict[str, str]:
    data: dict[str, str] = tab.page.eval_on_selector("#stage", "el => ({...el.dataset})")
    return data


def wait_shown(tab: TestTab, key: str, wanted: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while (value := shown(tab).get(key, "")) != wanted:
        assert time.monotonic() < deadline, f"#stage data-{key} is {value!r}, not {wanted!r}"
        tab.page.wait_for_timeout(50)


def start_tracking(tab: TestTab, slug: str) -> list[Response]:
    """Open `slug`'s Test tab, tick Track objects, start the webcam; the predict answers, as they come."""
    answers: list[Response] = []
    tab.open(slug)
    page = tab.page
    page.on("response", lambda r: answers.append(r) if r.url.endswith(PREDICT) else None)
    page.wait_for_selector("#track-controls:not([hidden])")
    page.check("#track")
    page.click("#webcam-start")
    return answers


def tracks_of(body: dict[str, Any]) -> list[list[float]]:
    return [[p["track_id"], *(p["box"][k] for k in ("x1", "y1", "x2", "y2"))] for p in body["predictions"]]


def test_the_webcam_tracks_frame_after_frame_and_stop_ends_the_session(
    cam: TestTab, shapes_model: str, stack: Stack
) -> None:
    answers = start_tracking(cam, shapes_model)
    page = cam.page
    snapshots: list[tuple[dict[str, str], list[list[int]]]] = []
    deadline = time.monotonic() + 30
    while len(snapshots) < SNAPSHOTS:
        assert time.monotonic() < deadline, f"{len(snapshots)} answers drawn in 30 s"
        data, edges = page.eval_on_selector("#stage", SNAPSHOT)
        drawn_before = {s["camFrame"] for s, _ in snapshots}
        if data.get("camAnswers", "0") != "0" and data["camFrame"] not in drawn_before:
            snapshots.append((data, edges))
        page.wait_for_timeout(40)
    assert cam.max_in_flight == 1  # the next frame leaves once the previous answer is in

    session = snapshots[0][0]["camSession"]
    assert re.fullmatch(r"cam-[0-9a-f]{24}", session)
    assert all(cam.sent(i)["track_session"] == session for i in range(len(cam.predicts)))
    by_frame = {int(r.headers["trident-track-frame"]): r for r in answers if r.ok}
    assert all(r.headers["trident-track-session"] == session for r in by_frame.values())
    assert sorted(by_frame) == list(range(1, len(by_frame) + 1))  # the session's frames, counted
    frames = [int(data["camFrame"]) for data, _ in snapshots]
    assert frames == sorted(frames) and len(set(frames)) == SNAPSHOTS  # advancing

    ids_seen = []
    for data, edges in snapshots:
        body = by_frame[int(data["camFrame"])].json()
        expected = tracks_of(body)
        drawn = json.loads(data["camTracks"])
        assert len(drawn) == len(expected) >= 3, (data, expected)
        for got, want in zip(drawn, expected, strict=True):  # the ids and boxes of that frame's answer
            assert got[0] == want[0] and got[1:] == pytest.approx(want[1:], abs=0.051)
        ids = [int(t[0]) for t in expected]
        assert data["camIds"] == ",".join(map(str, ids))  # each labelled "#id"
        coloured = sum(tuple(px) == (*id_colour(i), 255) for px, i in zip(edges, ids, strict=True))
        assert coloured >= max(len(ids) // 2, 2), (edges, ids)  # stroked where the API put it
        ids_seen.append(set(ids))
    for before, after in itertools.pairwise(ids_seen):
        assert len(before & after) >= 2, ids_seen  # the same objects keep their ids
    assert int(snapshots[-1][0]["camTrails"]) > 0
    status = page.text_content("#webcam-status") or ""
    assert f"session {session}" in status and "frame" in status and " ms" in status
    assert page.locator("#webcam-overlay").bounding_box() == page.locator("#webcam").bounding_box()
    cam.screenshot("test-tab-webcam.png")

    # a slider moved: the session is bound to its options (409 for others), so it is ended and
    # the next frames go to a new one
    with page.expect_response(lambda r: "/api/track-sessions/" in r.url, timeout=30_000) as renewed:
        page.fill("#conf", "0.3")
    assert (renewed.value.request.method, renewed.value.status) == ("DELETE", 204)
    assert renewed.value.url.endswith(f"/api/track-sessions/{session}")
    deadline = time.monotonic() + 30
    while (now := shown(cam))["camSession"] == session or now["camAnswers"] == "0":
        assert time.monotonic() < deadline, "no frame drawn in a new session"
        page.wait_for_timeout(50)
    renewal = now["camSession"]
    assert (cam.sent()["track_session"], cam.sent()["conf"]) == (renewal, "0.3")

    with page.expect_response(lambda r: "/api/track-sessions/" in r.url, timeout=30_000) as ended:
        page.click("#webcam-stop")
    assert (ended.value.request.method, ended.value.status) == ("DELETE", 204)
    assert ended.value.url.endswith(f"/api/track-sessions/{renewal}")
    wait_shown(cam, "camTrack", "ended")  # the camera itself is off
    assert page.locator("#webcam").is_hidden()
    sent = len(cam.predicts)
    listed = httpx.get(
        f"{stack.base_url}/api/track-sessions", headers={"Authorization": f"Bearer {stack.api_key}"}
    )
    assert listed.status_code == 200 and session not in listed.text and renewal not in listed.text
    page.wait_for_timeout(300)
    assert len(cam.predicts) == sent  # nothing more is sent


def test_capture_predicts_the_current_frame_as_a_still_without_the_session(
    cam: TestTab, shapes_model: str
) -> None:
    start_tracking(cam, shapes_model)
    page = cam.page
    deadline = time.monotonic() + 30
    while int(shown(cam).get("camAnswers", "0")) < 2:
        assert time.monotonic() < deadline, "no answer drawn in 30 s"
        page.wait_for_timeout(50)
    runs = cam.run_count()

    def still(r: Response) -> bool:
        return r.url.endswith(PREDICT) and b'name="track_session"' not in (r.request.post_data_buffer or b"")

    with page.expect_response(still, timeout=30_000) as answer:
        page.click("#webcam-capture")
    cam.wait_run(runs + 1)
    body = answer.value.json()
    assert answer.value.status == 200 and "trident-track-session" not in answer.value.headers
    assert body["predictions"] and all("track_id" not in p for p in body["predictions"])
    assert int(cam.stage["boxes"]) == len(body["predictions"])  # drawn on the image canvas
    assert page.locator("#canvas").is_visible() and page.locator("#webcam").is_hidden()
    assert "track_session" not in cam.sent()
    wait_shown(cam, "camEnded", "204")  # the session was ended with the camera
    assert shown(cam)["camTrack"] == "ended"


def test_leaving_the_page_ends_the_session(cam: TestTab, shapes_model: str, stack: Stack) -> None:
    start_tracking(cam, shapes_model)
    page = cam.page
    deadline = time.monotonic() + 30
    while shown(cam).get("camAnswers", "0") == "0":
        assert time.monotonic() < deadline, "no answer drawn in 30 s"
        page.wait_for_timeout(50)
    session = shown(cam)["camSession"]

    def listed() -> str:
        r = httpx.get(
            f"{stack.base_url}/api/track-sessions", headers={"Authorization": f"Bearer {stack.api_key}"}
        )
        assert r.status_code == 200, r.text
        return r.text

    assert session in listed()
    cam.hold()  # the next frame stays in the browser: none reaches the server after the DELETE
    while not cam.held:  # a frame is held (one already out when hold() began is not)
        page.wait_for_timeout(20)
    page.goto(f"{stack.base_url}/")  # pagehide: a keepalive DELETE
    deadline = time.monotonic() + 10
    while session in listed():
        assert time.monotonic() < deadline, f"{session} still listed 10 s after the page went"
        time.sleep(0.1)


def test_a_session_the_server_ended_stops_the_camera_with_the_reason(
    cam: TestTab, shapes_model: str, stack: Stack
) -> None:
    """Other sessions of the same key push the page's out (the per-key bound): its next frame is
    answered 410, and the page stops the camera and says so."""
    start_tracking(cam, shapes_model)
    page = cam.page
    deadline = time.monotonic() + 30
    while shown(cam).get("camAnswers", "0") == "0":
        assert time.monotonic() < deadline, "no answer drawn in 30 s"
        page.wait_for_timeout(50)
    session = shown(cam)["camSession"]
    cam.hold()  # the page's next frame waits in the browser while its session is pushed out
    while not cam.held:  # a frame is held (one already out when hold() began is not)
        page.wait_for_timeout(20)
    image = cv2.imencode(".jpg", np.full((64, 64, 3), 127, np.uint8))[1].tobytes()
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    others: list[str] = []
    for i in range(32):  # at most the bound (8) plus whatever older sessions the key holds
        other = f"browser-evict-{i}"
        r = httpx.post(
            f"{stack.base_url}/api/models/{shapes_model}/predict",
            headers=auth,
            files={"file": ("grey.jpg", image, "image/jpeg")},
            data={"track_session": other},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        others.append(other)
        if r.headers.get("trident-track-session-evicted") == session:
            break
    else:
        raise AssertionError(f"{session} was never evicted")
    cam.allowed_statuses.add(410)
    with page.expect_response(lambda r: r.url.endswith(PREDICT)) as gone:
        cam.release()
    assert gone.value.status == 410
    wait_shown(cam, "cam", "error")
    assert shown(cam)["camTrack"] == "ended" and "camEnded" not in shown(cam)  # no DELETE: it is gone
    message = page.text_content("#message") or ""
    assert page.locator("#message").is_visible() and message.startswith(
        f"The webcam stopped: track session '{session}' has ended"
    ), message
    assert page.locator("#webcam-start").is_enabled() and page.locator("#webcam-bar").is_hidden()
    cam.screenshot("test-tab-webcam-gone.png")
    for other in others:
        httpx.delete(f"{stack.base_url}/api/track-sessions/{other}", headers=auth)
