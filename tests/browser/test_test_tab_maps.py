"""The Test tab on semantic and depth models: overlays placed and coloured from the API's own maps.

The models are YAML-built (tests/helpers/models.py), so the "known regions" are whatever the API
answered: each test decodes the class or depth map of the answer and checks every pixel of the
drawn canvas against it, on an odd-size PNG (lossless, so the browser sees the same pixels as
OpenCV) and at the image's edges. Colours come from Ultralytics' palette and matplotlib's
viridis, not from the page's code.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np
import pytest
from numpy.typing import NDArray
from playwright.sync_api import expect
from ultralytics.utils.plotting import colors

from pipeline.render_maps import decode_depth_png, decode_mask_png
from tests.browser.conftest import TestTab, to_fixed

pytestmark = pytest.mark.integration

SEMANTIC_ALPHA = 0.5  # class colours over the image at half opacity (README), as Ultralytics blends them
BLEND_TOLERANCE = 2  # the canvas blends in 8 bits
VIRIDIS_TOLERANCE = 6  # the page's polynomial viridis is within 5/255 of matplotlib's 256-entry table


def rgb(path: Path) -> NDArray[np.int16]:
    image = cv2.imread(str(path))
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.int16)


def canvas_rgb(tab: TestTab) -> NDArray[np.int16]:
    """The drawn canvas, every pixel, at its own size (not the screenshot's scaled copy)."""
    url = tab.page.eval_on_selector("#canvas", "c => c.toDataURL('image/png')")
    png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    image = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
    assert image is not None and (image[..., 3] == 255).all(), "the drawing is opaque"
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB).astype(np.int16)


def assert_drawn_exactly(canvas: NDArray[np.int16], expected: NDArray[np.float64], tolerance: int) -> None:
    """Every pixel as expected, the last row and column included; a one-pixel shift would not pass."""
    assert canvas.shape == expected.shape
    error = np.abs(canvas - expected).max(axis=2)
    assert error.max() <= tolerance, f"{(error > tolerance).sum()} pixels off, worst at {np.argmax(error)}"
    for moved in (np.abs(expected[1:] - expected[:-1]), np.abs(expected[:, 1:] - expected[:, :-1])):
        assert (moved.max(axis=2) > tolerance).sum() > 100, "the map has edges enough to catch a shift"


def uniform_points(values: NDArray[Any], radius: int, count: int) -> list[tuple[int, int, int]]:
    """(x, y, value) for `count` different values, each at the centre of a uniform square."""
    size = 2 * radius + 1
    found = []
    distinct, frequency = np.unique(values, return_counts=True)
    for v in distinct[np.argsort(-frequency)]:
        inside = cv2.erode((values == v).astype(np.uint8), np.ones((size, size), np.uint8))
        inside[:radius], inside[-radius:], inside[:, :radius], inside[:, -radius:] = 0, 0, 0, 0
        ys, xs = np.nonzero(inside)
        if len(xs):
            found.append((int(xs[len(xs) // 2]), int(ys[len(ys) // 2]), int(v)))
        if len(found) == count:
            return found
    raise AssertionError(f"fewer than {count} values have a uniform {size}x{size} square")


def hover(tab: TestTab, body: dict[str, Any], x: int, y: int) -> str:
    """Point at the centre of image pixel (x, y), as drawn on screen; the tooltip's text."""
    box = tab.page.locator("#canvas").bounding_box()
    assert box is not None
    scale = box["width"] / body["image"]["width"]
    tab.page.mouse.move(box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale)
    expect(tab.page.locator("#tooltip")).to_be_visible()
    return tab.page.text_content("#tooltip") or ""


def upload(tab: TestTab, path: Path) -> dict[str, Any]:
    return tab.predict_and_draw(lambda: tab.page.set_input_files("#file", str(path)))


def download(tab: TestTab, tmp_path: Path, name: str) -> NDArray[np.int16]:
    with tab.page.expect_download() as saved:
        tab.page.click("#download")
    assert saved.value.suggested_filename == name
    saved.value.save_as(tmp_path / name)
    return rgb(tmp_path / name)


def test_semantic_overlay_is_the_class_map_in_class_colours(
    tab: TestTab, task_models: dict[str, str], odd_images: list[Path], tmp_path: Path
) -> None:
    slug = task_models["semantic"]
    tab.open(slug)
    body = tab.click_example("bus.jpg")
    assert tab.stage["overlays"] == "1"
    classes = body["predictions"]
    assert len(classes) >= 5, "the test model paints many classes"
    expect(tab.page.locator("#legend li .name")).to_have_text([p["class"] for p in classes])
    expect(tab.page.locator("#legend li .pct")).to_have_text(
        [f"{to_fixed(p['pixel_ratio'] * 100, 1)}%" for p in classes]
    )
    names = {p["class_id"]: p["class"] for p in classes}
    mask = decode_mask_png(body["semantic_mask"])
    for x, y, class_id in uniform_points(mask, radius=2, count=3):  # the page shows bus.jpg scaled down
        assert hover(tab, body, x, y) == names[class_id], f"at ({x}, {y})"
        expect(tab.page.locator("#legend li.hot .name")).to_have_text(names[class_id])
    tab.screenshot("test-tab-semantic-bus.png")

    image = odd_images[0]  # 333x517
    body = upload(tab, image)
    mask = decode_mask_png(body["semantic_mask"])
    assert mask.shape == (517, 333) and len(np.unique(mask)) >= 5
    palette = np.array([colors(i) for i in range(256)], np.float64)  # RGB, the boxes' palette
    expected = rgb(image) * (1 - SEMANTIC_ALPHA) + palette[mask] * SEMANTIC_ALPHA
    canvas = canvas_rgb(tab)
    assert_drawn_exactly(canvas, expected, BLEND_TOLERANCE)
    saved = download(tab, tmp_path, f"{image.stem}-{slug.split('/')[-1]}-annotated.png")
    assert (saved == canvas).all(), "Download gives the image with its overlay"


def test_depth_is_a_viridis_map_with_its_scale(
    tab: TestTab, task_models: dict[str, str], odd_images: list[Path], tmp_path: Path
) -> None:
    slug = task_models["depth"]
    tab.open(slug)
    body = tab.click_example("bus.jpg")
    depth = body["depth"]
    assert tab.stage["overlays"] == "1" and depth["bits"] == 8  # the page asks for the default
    expect(tab.page.locator("#depth-min")).to_have_text(f"{to_fixed(depth['min'], 2)} m")
    expect(tab.page.locator("#depth-max")).to_have_text(f"{to_fixed(depth['max'], 2)} m")
    viridis = matplotlib.colormaps["viridis"]
    bar = tab.page.eval_on_selector(
        "#depth-bar", "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, 1).data)"
    )
    bar_rgb = np.array(bar, np.int16).reshape(-1, 4)[:, :3]
    reference = viridis(np.linspace(0, 1, len(bar_rgb)))[:, :3] * 255
    assert np.abs(bar_rgb - reference).max() <= VIRIDIS_TOLERANCE, "the scale runs min to max, as drawn"
    step = depth["max"] / 255
    pixels = np.rint(decode_depth_png(depth) / step).astype(np.int64)  # the PNG's values
    for x, y, value in uniform_points(pixels, radius=2, count=3):
        assert hover(tab, body, x, y) == f"{to_fixed(value * step, 2)} m", f"at ({x}, {y})"
    tab.screenshot("test-tab-depth-bus.png")

    image = odd_images[0]
    body = upload(tab, image)
    depth = body["depth"]
    metres = decode_depth_png(depth).astype(np.float64)
    assert metres.shape == (517, 333)
    t = (metres - depth["min"]) / (depth["max"] - depth["min"])
    expected = np.where((metres > 0)[..., None], viridis(np.clip(t, 0, 1))[..., :3] * 255, rgb(image))
    canvas = canvas_rgb(tab)
    assert_drawn_exactly(canvas, expected, VIRIDIS_TOLERANCE)
    saved = download(tab, tmp_path, f"{image.stem}-{slug.split('/')[-1]}-annotated.png")
    assert (saved == canvas).all(), "Download gives the coloured map"
