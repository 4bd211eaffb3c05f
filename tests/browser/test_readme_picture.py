"""The README's one picture is the Test tab as this code draws it now, not as it once looked.

The README is read on GitHub, where only committed files show, so its picture is a committed PNG
(`docs/assets/test-tab.png`). This test takes the same picture afresh, the way `make run` leaves
a newcomer (the demo examples detector, `bus.jpg`), and fails when the committed one differs from
it beyond the run's own noise: the speed figures, which change every run, are painted over in
both before comparing. A changed layout, colour, label or box is a failure that says how to
update the picture (copy the fresh one, which this run saved beside the site's other pictures).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from demo.models import weights
from demo.train import RECIPES
from tests.browser.conftest import TestTab
from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration

COMMITTED = Path(__file__).parents[2] / "docs" / "assets" / "test-tab.png"
FRESH = "readme-test-tab.png"
SLUG = "demo/examples/detect"  # as `make run` exports it
CHANNEL_STEP = 32  # a pixel differs when a channel moves by more than this (antialiasing moves less)
MOST_DIFFERENT = 0.0005  # share of pixels allowed to differ: 0.05 %, about 580 of the 1280 x 900


def changed_share(committed: np.ndarray, fresh: np.ndarray, masks: list[dict[str, float]]) -> float:
    """The share of pixels that differ between two screenshots, outside the masked boxes."""
    assert committed.shape == fresh.shape, (committed.shape, fresh.shape)
    a, b = committed.astype(np.int16), fresh.astype(np.int16)
    for box in masks:
        x, y = int(box["x"]) - 2, int(box["y"]) - 2
        w, h = int(box["width"]) + 4, int(box["height"]) + 4
        a[max(y, 0) : y + h, max(x, 0) : x + w] = 0
        b[max(y, 0) : y + h, max(x, 0) : x + w] = 0
    return float((np.abs(a - b).max(axis=2) > CHANNEL_STEP).mean())


def test_changed_share_sees_a_moved_label_and_ignores_the_masked_speed() -> None:
    """The comparison's own negative control: a few pixels of new text fail it, a masked one not."""
    base = np.full((900, 1280, 3), 240, np.uint8)
    cv2.putText(base, "person 0.91", (100, 100), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1)
    moved = np.full_like(base, 240)
    cv2.putText(moved, "person 0.91", (100, 130), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1)
    assert changed_share(base, base.copy(), []) == 0
    assert changed_share(base, moved, []) > MOST_DIFFERENT
    masked = [{"x": 90, "y": 80, "width": 140, "height": 60}]
    assert changed_share(base, moved, masked) == 0


def test_the_readmes_picture_is_the_test_tab_as_it_is_now(tab: TestTab, stack: Stack) -> None:
    recipe = RECIPES["examples-detect"]
    stack.export(weights(recipe), SLUG, imgsz=recipe.imgsz)
    stack.wait_model(SLUG, timeout_s=120)
    tab.open(SLUG)
    body = tab.click_example("bus.jpg")
    assert {p["class"] for p in body["predictions"]} >= {"person", "bus"}
    tab.page.mouse.move(0, 0)  # no hover highlight
    fresh_path = tab.screenshot(FRESH, full_page=False)
    speed = tab.page.locator("#speed").bounding_box()
    assert speed is not None
    fresh = cv2.imread(str(fresh_path))
    committed = cv2.imread(str(COMMITTED))
    update = f"the Test tab changed: review {fresh_path} and copy it to {COMMITTED}"
    assert committed is not None, f"no committed picture: {update}"
    assert committed.shape == fresh.shape, update
    share = changed_share(committed, fresh, [speed])
    assert share <= MOST_DIFFERENT, f"{share:.4%} of the pixels differ; {update}"
