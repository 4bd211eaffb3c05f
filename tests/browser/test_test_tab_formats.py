"""The Test tab on every format the server takes, and a model's own examples, in Chromium.

Chromium shows neither HEIC nor TIFF: the page draws on the server's decoding of the file
(`POST /api/preview`, predict's own decoder) and sends predict the file itself. The boxes drawn are
compared with the answer, pixel by pixel on their edges, as the video tests do.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from playwright.sync_api import expect

from demo.generate import SHAPES
from tests.browser.conftest import DETECT, EDGE_PIXELS, TestTab, palette
from tests.helpers.formats import encode, rotated
from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration


def drawn_where_answered(tab: TestTab, body: dict[str, Any]) -> int:
    """Every prediction drawn (box and label), each box stroked on the answer's edge in its class's
    colour (unless a later box or label covers that pixel); the number of boxes."""
    predictions = body["predictions"]
    stage = tab.stage
    assert stage["state"] == "done"
    assert int(stage["predictions"]) == int(stage["boxes"]) == int(stage["labels"]) == len(predictions) > 0
    size = tab.page.eval_on_selector("#canvas", "c => [c.width, c.height]")
    assert size == [body["image"]["width"], body["image"]["height"]], "drawn on the picture the model saw"
    boxes = [[p["box"][k] for k in ("x1", "y1", "x2", "y2")] for p in predictions]
    edges = tab.page.eval_on_selector("#canvas", EDGE_PIXELS, boxes)
    colours = palette()
    expected = [(*colours[p["class_id"] % len(colours)], 255) for p in predictions]
    coloured = sum(tuple(px) == want for px, want in zip(edges, expected, strict=True))
    assert coloured >= max(len(boxes) // 2, 1), (edges, expected)
    return len(predictions)


def drop_file(tab: TestTab, data: bytes, name: str, mime: str) -> None:
    transfer = tab.page.evaluate_handle(
        """([data, name, mime]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""",
        [base64.b64encode(data).decode(), name, mime],
    )
    tab.page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
    tab.page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


@pytest.fixture(scope="module")
def bus_rgb(bus: Path) -> Any:
    return cv2.imread(str(bus))[..., ::-1].copy()


def test_a_dropped_heic_is_drawn_with_its_boxes(tab: TestTab, bus_rgb: Any) -> None:
    """An iPhone-style photo: HEIC, its EXIF saying to turn it a quarter; drawn turned, as predicted."""
    data = rotated(bus_rgb, "heic")
    tab.open(DETECT)
    tab.page.fill("#conf", "0.9")  # the busy model's few surest boxes: edges seldom covered by others
    with tab.page.expect_response(lambda r: r.url.endswith("/api/preview")) as preview:
        body = tab.predict_and_draw(lambda: drop_file(tab, data, "bus.heic", "image/heic"))
    assert preview.value.status == 200 and preview.value.headers["content-type"] == "image/jpeg"
    assert body["image"] == {"width": 1080, "height": 810}  # 810x1080 turned by the EXIF orientation
    assert drawn_where_answered(tab, body) > 0
    assert data[:64] in tab.predicts[-1], "predict gets the file itself, not the preview"
    tab.screenshot("test-tab-heic.png")


def test_a_chosen_tiff_is_drawn_with_its_boxes(tab: TestTab, bus_rgb: Any, tmp_path: Path) -> None:
    path = tmp_path / "bus.tiff"
    path.write_bytes(encode(bus_rgb, "tiff"))  # 16 bits per sample, with alpha
    tab.open(DETECT)
    tab.page.fill("#conf", "0.9")
    body = tab.predict_and_draw(lambda: tab.page.set_input_files("#file", str(path)))
    assert body["image"] == {"width": 810, "height": 1080}
    assert drawn_where_answered(tab, body) > 0
    # predict gets the file itself (Playwright records a file from disk by its part's headers alone)
    assert b'filename="bus.tiff"\r\nContent-Type: image/tiff' in tab.predicts[-1]


def test_a_file_the_server_cannot_decode_is_explained(tab: TestTab) -> None:
    """A TIFF by its first bytes, truncated: the preview's 400 is shown and nothing is predicted."""
    tab.allowed_statuses.add(400)
    tab.open(DETECT)
    tab.page.set_input_files(
        "#file", {"name": "scan.tif", "mimeType": "image/tiff", "buffer": b"II*\x00junk"}
    )
    expect(tab.page.locator("#message")).to_contain_text("Invalid image")
    assert tab.predicts == []


def test_a_shapes_model_shows_its_own_examples(tab: TestTab, shapes_model: str) -> None:
    tab.open(shapes_model)
    expect(tab.page.locator("#examples")).to_have_attribute("data-source", "model")
    names = tab.page.eval_on_selector_all("#examples button", "bs => bs.map(b => b.dataset.example)")
    assert names == [f"detect-{i}.jpg" for i in range(4)]
    body = tab.click_example("detect-0.jpg")
    assert body["image"] == {"width": 320, "height": 320}
    assert drawn_where_answered(tab, body) > 0
    assert {p["class"] for p in body["predictions"]} <= set(SHAPES)
    tab.screenshot("test-tab-shapes-examples.png")


def test_a_model_without_examples_shows_bus_and_zidane(tab: TestTab) -> None:
    tab.open(DETECT)
    expect(tab.page.locator("#examples")).to_have_attribute("data-source", "default")
    names = tab.page.eval_on_selector_all("#examples button", "bs => bs.map(b => b.dataset.example)")
    assert names == ["bus.jpg", "zidane.jpg"]


def test_model_examples_are_private_like_the_model(stack: Stack, shapes_model: str) -> None:
    base = f"{stack.base_url}/api/models/{shapes_model}/examples"
    key = {"Authorization": f"Bearer {stack.api_key}"}
    assert httpx.get(base, headers=key).json() == {"examples": [f"detect-{i}.jpg" for i in range(4)]}
    image = httpx.get(f"{base}/detect-0.jpg", headers=key)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content.startswith(b"\xff\xd8\xff")
    assert httpx.get(base, headers={"Authorization": "Bearer tri_wrong"}).status_code == 401
    for name in ("nope.jpg", "..%2F..%2Fconfig.pbtxt", "model.onnx"):
        assert httpx.get(f"{base}/{name}", headers=key).status_code == 404, name
    assert httpx.get(f"{stack.base_url}/api/models/{DETECT}/examples", headers=key).json() == {"examples": []}
    assert httpx.get(f"{stack.base_url}/api/models/no/such/model/examples", headers=key).status_code == 404
