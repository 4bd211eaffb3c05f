"""The Test tab, used the way a person uses it, in Debian's Chromium against the real stack."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import DETECT, PREDICT, TestTab, to_fixed
from tests.helpers.stack import Stack, in_one_minute

pytestmark = pytest.mark.integration


def drawn_matches(tab: TestTab, body: dict[str, object], shape: str = "boxes") -> int:
    """Assert the page drew one `shape` and one label per prediction; returns how many."""
    predictions = body["predictions"]
    assert isinstance(predictions, list)
    stage = tab.stage
    assert stage["state"] == "done"
    assert int(stage["predictions"]) == len(predictions)
    assert int(stage[shape]) == len(predictions)
    assert int(stage["labels"]) == len(predictions)
    expect(tab.page.locator("#predictions tbody tr")).to_have_count(len(predictions))
    return len(predictions)


def test_picker_asks_for_a_key_once_and_links_every_model(browser: Browser, stack: Stack) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(stack.base_url)
    expect(page.locator("#key-panel")).to_be_visible()
    page.fill("#key-input", stack.api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-panel")).to_be_hidden()
    expect(page.locator("#models a", has_text=DETECT)).to_be_visible()

    page.reload()  # the session is remembered (a token cookie, not the key)
    expect(page.locator("#models a", has_text=DETECT)).to_be_visible()
    expect(page.locator("#key-panel")).to_be_hidden()
    page.click(f"#models a:text-is('{DETECT}')")
    page.wait_for_url(f"**/models/{DETECT}")
    expect(page.locator("#task")).to_have_text("detect")
    context.close()
    assert errors == []


def test_upload_by_file_input_draws_every_prediction(tab: TestTab, bus: Path) -> None:
    tab.open(DETECT)
    body = tab.predict_and_draw(lambda: tab.page.set_input_files("#file", str(bus)))
    assert drawn_matches(tab, body) > 10, "a busy model finds many boxes on bus.jpg"
    assert tab.page.eval_on_selector("#canvas", "c => [c.width, c.height]") == [810, 1080]
    assert len(tab.predicts) == 1
    # the speed breakdown is the API's, and the raw JSON is there
    for stage in ("preprocess", "inference", "postprocess"):
        shown = tab.page.text_content(f"#speed dd[data-stage={stage}]")
        assert shown == f"{to_fixed(body['speed'][stage], 1)} ms"  # 27.25 shows as 27.3
    tab.page.click("[data-tab=json]")
    assert tab.page.text_content("#json").strip().startswith('{\n  "success": true')
    tab.page.click("[data-tab=list]")
    tab.screenshot("test-tab-detect-bus-conf0.25.png")
    confident = tab.predict_and_draw(lambda: tab.page.fill("#conf", "0.9"))  # fewer boxes, easier to check
    assert 0 < drawn_matches(tab, confident) < len(body["predictions"])
    tab.screenshot("test-tab-detect-bus.png")


def test_hovering_a_box_names_it(tab: TestTab) -> None:
    tab.open(DETECT)
    body = tab.click_example("bus.jpg")
    largest = max(
        body["predictions"],
        key=lambda p: (p["box"]["x2"] - p["box"]["x1"]) * (p["box"]["y2"] - p["box"]["y1"]),
    )
    canvas = tab.page.locator("#canvas").bounding_box()
    assert canvas is not None
    scale = canvas["width"] / body["image"]["width"]
    x = (largest["box"]["x1"] + largest["box"]["x2"]) / 2
    y = (largest["box"]["y1"] + largest["box"]["y2"]) / 2
    tab.page.mouse.move(canvas["x"] + x * scale, canvas["y"] + y * scale)
    expect(tab.page.locator("#tooltip")).to_be_visible()
    under = {
        f"{p['class']} {p['confidence'] * 100:.1f}%"
        for p in body["predictions"]
        if p["box"]["x1"] <= x <= p["box"]["x2"] and p["box"]["y1"] <= y <= p["box"]["y2"]
    }
    assert tab.page.text_content("#tooltip") in under, "it names a prediction under the pointer"
    expect(tab.page.locator("#predictions tr.hot")).to_have_count(1)


def test_upload_by_drag_and_drop(tab: TestTab, zidane: Path) -> None:
    tab.open(DETECT)
    payload = base64.b64encode(zidane.read_bytes()).decode()

    def drop() -> None:
        transfer = tab.page.evaluate_handle(
            """data => {
                const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], "zidane.jpg", {type: "image/jpeg"}));
                return transfer;
            }""",
            payload,
        )
        tab.page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
        tab.page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})

    body = tab.predict_and_draw(drop)
    assert body["image"] == {"width": 1280, "height": 720}
    assert drawn_matches(tab, body) > 0


def test_each_example_runs_on_click(tab: TestTab) -> None:
    tab.open(DETECT)
    for count, (name, size) in enumerate([("bus.jpg", (810, 1080)), ("zidane.jpg", (1280, 720))], start=1):
        body = tab.click_example(name)
        assert (body["image"]["width"], body["image"]["height"]) == size
        assert drawn_matches(tab, body) > 0
        assert len(tab.predicts) == count, "one click, one request"


@pytest.mark.parametrize(
    ("control", "presses", "sent"),
    [("conf", 5, "0.3"), ("iou", 5, "0.5"), ("imgsz", 3, "736")],
)
def test_each_slider_reruns_once_after_a_pause(tab: TestTab, control: str, presses: int, sent: str) -> None:
    tab.open(DETECT)
    tab.click_example("bus.jpg")
    before = len(tab.predicts)
    runs = tab.run_count()
    tab.page.focus(f"#{control}")
    for _ in range(presses):  # a burst: one input event per key press
        tab.page.keyboard.press("ArrowRight")
    expect(tab.page.locator(f"#{control}-value")).to_have_text(sent)
    tab.wait_run(runs + 1)
    tab.page.wait_for_timeout(1200)  # longer than the debounce: nothing else goes out
    new = tab.predicts[before:]
    assert len(new) == 1, f"{len(new)} requests for one burst of {presses} changes"
    assert tab.sent()[control] == sent
    assert tab.max_in_flight == 1
    assert f"{control}={sent}" in tab.page.text_content("#code-curl")


def test_changes_during_a_request_wait_for_it(tab: TestTab) -> None:
    """A change while a prediction runs never overlaps it; then only the newest settings go out."""
    tab.open(DETECT)
    tab.click_example("bus.jpg")
    before = len(tab.predicts)
    tab.hold()  # the server is slow to answer the next call
    with tab.page.expect_request(lambda r: r.url.endswith(PREDICT)):
        tab.page.fill("#conf", "0.4")  # fill on a range input sets it and fires `input`
    tab.page.fill("#conf", "0.5")
    tab.page.fill("#iou", "0.6")
    tab.page.wait_for_timeout(1200)  # the debounce has long passed
    assert len(tab.predicts) - before == 1, "nothing more while the first call runs"
    runs = tab.run_count()
    tab.release()
    tab.wait_run(runs + 2)
    tab.page.wait_for_timeout(1000)
    assert len(tab.predicts) - before == 2, "then the newest settings, once"
    assert tab.sent() == {"conf": "0.5", "iou": "0.6", "imgsz": "640"}
    assert tab.max_in_flight == 1


def test_segmentation_draws_a_mask_per_prediction(tab: TestTab, task_models: dict[str, str]) -> None:
    tab.open(task_models["segment"])
    body = tab.click_example("bus.jpg")
    count = drawn_matches(tab, body)
    assert count > 0
    with_polygon = sum(len(p["segments"]) >= 3 for p in body["predictions"])
    assert int(tab.stage["masks"]) == with_polygon > 0
    confident = tab.predict_and_draw(lambda: tab.page.fill("#conf", "0.9"))  # fewer masks, easier to check
    assert int(tab.stage["masks"]) == sum(len(p["segments"]) >= 3 for p in confident["predictions"]) > 0
    tab.screenshot("test-tab-segment-bus.png")


def test_pose_draws_keypoints_and_skeleton(tab: TestTab, task_models: dict[str, str]) -> None:
    tab.open(task_models["pose"])
    body = tab.click_example("zidane.jpg")
    drawn_matches(tab, body)
    visible = [k for p in body["predictions"] for k in p["keypoints"] if k["conf"] >= 0.5]
    assert int(tab.stage["keypoints"]) == len(visible) > 0
    assert int(tab.stage["limbs"]) > 0
    tab.screenshot("test-tab-pose-zidane.png")


def test_obb_draws_rotated_boxes(tab: TestTab, task_models: dict[str, str]) -> None:
    tab.open(task_models["obb"])
    body = tab.click_example("bus.jpg")
    assert drawn_matches(tab, body, shape="obb") > 0
    assert tab.stage["boxes"] == "0"
    tab.screenshot("test-tab-obb-bus.png")


def test_classification_ranks_the_top_classes(tab: TestTab, task_models: dict[str, str]) -> None:
    tab.open(task_models["classify"])
    body = tab.click_example("bus.jpg")
    names = [p["class"] for p in body["predictions"]]
    assert len(names) == 5
    expect(tab.page.locator("#bars li .name")).to_have_text(names)
    assert tab.stage["bars"] == "5"
    tab.screenshot("test-tab-classify-bus.png")


def test_a_bad_key_is_explained_and_can_be_replaced(tab: TestTab) -> None:
    tab.allowed_statuses = {401}
    tab.open(DETECT, key=None)
    expect(tab.page.locator("#key-panel")).to_be_visible()
    with tab.page.expect_response(lambda r: r.url.endswith("/api/tokens")) as answer:
        tab.page.fill("#key-input", "tri_not_a_real_key")
        tab.page.click("#key-form button[type=submit]")
    assert answer.value.status == 401
    expect(tab.page.locator("#key-note")).to_have_text(
        "Your API key was not accepted. Enter a valid key to continue."
    )
    expect(tab.page.locator("#key-panel")).to_be_visible()
    tab.page.fill("#key-input", tab.api_key)
    tab.page.click("#key-form button[type=submit]")
    expect(tab.page.locator("#key-panel")).to_be_hidden()
    body = tab.click_example("bus.jpg")
    assert body["success"] is True
    expect(tab.page.locator("#message")).to_be_hidden()


def test_files_are_checked_before_sending(tab: TestTab) -> None:
    tab.open(DETECT)
    tab.page.set_input_files("#file", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
    expect(tab.page.locator("#message")).to_have_text(
        '"notes.txt" is not a supported image.'
        " Use JPEG, PNG, WebP, AVIF, HEIC, JP2, TIFF, BMP, DNG, MPO or GIF."
    )
    big = {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (11 * 1024 * 1024)}
    tab.page.set_input_files("#file", big)
    too_big = '"huge.jpg" is 11.0 MB; images must be 10 MB or smaller.'
    expect(tab.page.locator("#message")).to_have_text(too_big)
    assert tab.predicts == []


def test_the_code_panel_runs_as_shown(tab: TestTab, stack: Stack, bus: Path, tmp_path: Path) -> None:
    tab.open(DETECT)
    tab.click_example("bus.jpg")
    tab.page.fill("#conf", "0.5")
    tab.wait_run(2)
    tab.page.click("[data-tab=code]")
    curl = tab.page.text_content("#code-curl") or ""
    python = tab.page.text_content("#code-python") or ""
    assert f"{stack.base_url}/api/models/{DETECT}/predict" in curl
    (tmp_path / "bus.jpg").write_bytes(bus.read_bytes())
    env = {**os.environ, "TRIDENT_API_KEY": stack.api_key}
    shown = tab.page.text_content("#json") or ""
    for command in (["bash", "-c", curl + " -sS"], [sys.executable, "-c", python]):
        out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
        assert '"success"' in out.stdout or "'success'" in out.stdout
        assert out.stdout.count("class_id") == shown.count("class_id"), "same parameters, same answer"


def test_download_is_the_annotated_image(tab: TestTab, tmp_path: Path) -> None:
    tab.open(DETECT)
    tab.click_example("bus.jpg")
    with tab.page.expect_download() as download:
        tab.page.click("#download")
    assert download.value.suggested_filename == "bus-yolo11n-annotated.png"
    path = tmp_path / "annotated.png"
    download.value.save_as(path)
    image = cv2.imread(str(path))
    assert image.shape == (1080, 810, 3)
    palette_blue = (image == (255, 42, 4)).all(axis=2).sum()  # person boxes: "042AFF" in BGR
    assert palette_blue > 1000


def test_phone_width(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    tab = TestTab(page, stack.base_url, stack.api_key).open(DETECT)
    tab.click_example("bus.jpg")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    box = page.locator("#canvas").bounding_box()
    assert box is not None and box["width"] <= 390 and box["width"] > 300
    tab.screenshot("test-tab-phone.png")
    context.close()
    assert tab.unexpected_errors() == []


def test_an_over_limit_key_is_told_how_long_to_wait(tab: TestTab, stack: Stack, bus: Path) -> None:
    """A real Free key spends its 10 requests a minute through the API; the page then explains the 429."""

    def attempt(n: int) -> None:
        key = stack.create_key(f"browser-free-{n}", "free")
        for _ in range(10):
            assert stack.predict(DETECT, bus, key=key).status_code == 200
        tab.allowed_statuses = {429}
        tab.open(DETECT, key=key)
        with tab.page.expect_response(lambda r: r.url.endswith(PREDICT)) as answer:
            tab.page.click("[data-example='bus.jpg']")
        assert answer.value.status == 429
        wait = int(answer.value.headers["retry-after"])
        expect(tab.page.locator("#stage")).to_have_attribute("data-status", "429")
        seconds = f"{wait} second{'s' * (wait != 1)}"
        expect(tab.page.locator("#message")).to_have_text(
            f"Too many requests: this key has reached its rate limit. Try again in {seconds}."
        )

    in_one_minute(attempt)  # the limit counts per clock minute: spend it and be refused in one
