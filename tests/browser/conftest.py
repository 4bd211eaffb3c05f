"""A real Chromium (Debian's, headless) driven by Playwright against the real stack.

Every page is watched: a console error or an uncaught exception fails the test, except the
"Failed to load resource" line Chromium logs for an HTTP error the test itself provokes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, Request, Route, sync_playwright

from tests.helpers import screens
from tests.helpers.models import build_busy_model
from tests.helpers.stack import Stack

CHROMIUM = "/usr/bin/chromium"
PREDICT = "/predict?format=seed"  # the Test tab names its contract explicitly
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DETECT = "test/coco/yolo11n"
SHAPES = "browser/shapes/det"  # the demo detection model of shapes, for tracking
# slug -> Ultralytics YAML of the extra task models the browser tests need
TASK_MODELS = {
    "browser/coco/seg": "yolo11n-seg.yaml",
    "browser/coco/pose": "yolo11n-pose.yaml",
    "browser/dota/obb": "yolo11n-obb.yaml",
    "browser/imagenet/cls": "yolo11n-cls.yaml",
    "browser/maps/sem": "yolo26n-sem.yaml",
    "browser/maps/depth": "yolo26n-depth.yaml",
}


def palette() -> list[tuple[int, int, int]]:
    """The Test tab's colours (draw.js' PALETTE, Ultralytics'), as RGB: a class's, or a track id's."""
    source = (Path(__file__).parents[2] / "frontend" / "static" / "draw.js").read_text()
    block = source.split("export const PALETTE = [", 1)[1].split("];", 1)[0]
    return [(r, g, b) for r, g, b in map(bytes.fromhex, re.findall(r'"([0-9A-F]{6})"', block))]


def id_colour(track_id: int) -> tuple[int, int, int]:
    colours = palette()
    return colours[track_id % len(colours)]


# The colour of an overlay canvas at the middle of each box's left edge (x1, (y1 + y2) / 2): the
# pixel the box's stroke (2 px wide, centred on the edge) covers whole. `[[x1, y1, x2, y2], ...]`
EDGE_PIXELS = """(canvas, boxes) => boxes.map(([x1, y1, x2, y2]) =>
  Array.from(canvas.getContext("2d").getImageData(Math.floor(x1), Math.floor((y1 + y2) / 2), 1, 1).data))"""


def to_fixed(x: float, digits: int) -> str:
    """JavaScript's `x.toFixed(digits)`: the exact value, ties away from zero (Python's rounds to even)."""
    return str(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def task_models(stack: Stack, model_dir: Path) -> dict[str, str]:
    """Segment, pose, OBB, classify, semantic and depth models exported into the stack: task -> slug."""
    for slug, yaml_name in TASK_MODELS.items():
        stack.export(build_busy_model(yaml_name, model_dir / f"browser-{yaml_name[:-5]}.pt"), slug)
    for slug in TASK_MODELS:
        stack.wait_model(slug, timeout_s=120)
    return {stack.exported[slug].spec.task: slug for slug in TASK_MODELS}


@pytest.fixture(scope="session")
def shapes_model(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The committed demo detection model of moving shapes (what `tests.helpers.clips` draws),
    exported into the stack at its training size, with the examples `trident demo export` gives it:
    boxes a tracker can follow. Its slug."""
    from demo.models import weights, write_examples
    from demo.train import RECIPES

    recipe = RECIPES["shapes-detect"]
    examples = write_examples(recipe, tmp_path_factory.mktemp("shapes-examples"))
    stack.export(weights(recipe), SHAPES, imgsz=recipe.imgsz, examples=examples)
    stack.wait_model(SHAPES, timeout_s=120)
    return SHAPES


class TestTab:
    """One browser page on the Test tab, with what it sent and what went wrong recorded."""

    __test__ = False  # not a pytest class

    def __init__(self, page: Page, base_url: str, api_key: str) -> None:
        self.page = page
        self.base_url = base_url
        self.api_key = api_key
        self.errors: list[str] = []
        self.allowed_statuses: set[int] = set()
        self.predicts: list[bytes] = []  # the multipart bodies of the predict calls, in order
        self.held: list[Route] | None = None  # a list: predict calls are held here until release()
        self.in_flight = 0
        self.max_in_flight = 0
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.route(
            lambda url: url.endswith(PREDICT), self._record
        )  # read the body, then send it on unchanged
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _record(self, route: Route) -> None:
        self.predicts.append(route.request.post_data_buffer or b"")
        if self.held is not None:
            self.held.append(route)
        else:
            route.continue_()

    def hold(self) -> None:
        """Keep predict calls waiting (a slow server) until `release()`."""
        self.held = []

    def release(self) -> None:
        held, self.held = self.held or [], None
        for route in held:
            route.continue_()

    def _started(self, request: Request) -> None:
        if request.url.endswith(PREDICT):
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _ended(self, request: Request) -> None:
        if request.url.endswith(PREDICT):
            self.in_flight -= 1

    def unexpected_errors(self) -> list[str]:
        allowed = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")
        return [
            e
            for e in self.errors
            if not ((m := allowed.search(e)) and int(m.group(1)) in self.allowed_statuses)
        ]

    def open(self, slug: str, key: str | None = "") -> TestTab:
        """Open the Test tab of `slug` with a token made from `key` ("": the stack's key, None: none),
        as the key form makes it (the token cookie is the browser context's)."""
        key = self.api_key if key == "" else key
        if key is not None:
            made = self.page.request.post(
                f"{self.base_url}/api/tokens", headers={"Authorization": f"Bearer {key}"}
            )
            assert made.ok, made.text()
        self.page.goto(f"{self.base_url}/models/{slug}")
        self.page.wait_for_selector("#examples button")
        return self

    def sent(self, index: int = -1) -> dict[str, str]:
        """The form fields (all but the file) of a predict call the page made."""
        fields = re.findall(rb'name="(\w+)"\r\n\r\n([^\r]*)\r\n', self.predicts[index])
        return {k.decode(): v.decode() for k, v in fields}

    @property
    def stage(self) -> dict[str, str]:
        data: dict[str, str] = self.page.eval_on_selector("#stage", "el => ({...el.dataset})")
        return data

    def run_count(self) -> int:
        return int(self.stage["run"])

    def wait_run(self, count: int, timeout_s: float = 60) -> None:
        """Until `count` results have been drawn. Polled from here: `wait_for_function` evaluates its
        predicate with the page's `eval`, which the pages' Content-Security-Policy forbids."""
        deadline = time.monotonic() + timeout_s
        while (drawn := self.run_count()) < count:
            assert time.monotonic() < deadline, f"{drawn} results drawn after {timeout_s} s, not {count}"
            self.page.wait_for_timeout(50)

    def predict_and_draw(self, action: Any) -> dict[str, Any]:
        """Do `action`, return the JSON the API answered once the page has drawn it."""
        runs = self.run_count()
        with self.page.expect_response(lambda r: r.url.endswith(PREDICT), timeout=60_000) as answer:
            action()
        self.wait_run(runs + 1)
        body: dict[str, Any] = answer.value.json()
        return body

    def click_example(self, name: str) -> dict[str, Any]:
        return self.predict_and_draw(lambda: self.page.click(f"[data-example='{name}']"))

    def screenshot(self, name: str, full_page: bool = True) -> Path:
        """Save the page into the documentation's pictures (`tests.helpers.screens`)."""
        return screens.save(name, lambda path: self.page.screenshot(path=str(path), full_page=full_page))


@pytest.fixture
def tab(browser: Browser, stack: Stack) -> Iterator[TestTab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    tab = TestTab(context.new_page(), stack.base_url, stack.api_key)
    try:
        yield tab
    finally:
        context.close()
    assert tab.unexpected_errors() == [], "the browser console reported errors"
