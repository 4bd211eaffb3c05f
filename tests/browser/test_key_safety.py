"""The pasted key never stays in the browser, every page keeps a strict policy, names are text.

A person enters the key in the picker, opens the Test tab and runs predictions; then the key is
searched for everywhere the page could have put it. Every answer from the server is checked for
the policy headers, and every page listens for `securitypolicyviolation` from its first script.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, expect
from ultralytics import YOLO

from tests.browser.conftest import DETECT, PREDICT, TestTab
from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration
HOSTILE_SLUG = "browser/xss/det"
PAYLOAD = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


class Watched:
    """A browser context whose requests, answers and policy reports are all recorded."""

    def __init__(self, context: BrowserContext, base_url: str) -> None:
        self.context = context
        self.base_url = base_url
        self.urls: list[str] = []
        self.answers: list[Response] = []
        self.console: list[str] = []
        context.add_init_script(WATCH_VIOLATIONS)
        context.on("request", lambda r: self.urls.append(r.url))
        context.on("response", lambda r: self.answers.append(r))
        self.page = context.new_page()
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def violations(self, page: Page) -> list[str]:
        reported: list[str] = page.evaluate("window.__violations")
        return reported + [c for c in self.console if "Content Security Policy" in c]


@pytest.fixture
def watched(browser: Browser, stack: Stack) -> Iterator[Watched]:
    context = browser.new_context()
    yield Watched(context, stack.base_url)
    context.close()


@pytest.fixture(scope="module")
def hostile_model(stack: Stack, yolo11n_pt: Path, model_dir: Path) -> str:
    """A public detection model whose class names are HTML and a script."""
    model = YOLO(str(yolo11n_pt))
    names = dict(model.model.names)
    model.model.names = {i: f"{PAYLOAD}{SCRIPT}{name}" for i, name in names.items()}
    path = model_dir / "hostile-names.pt"
    model.save(str(path))
    stack.export(path, HOSTILE_SLUG)
    stack.wait_model(HOSTILE_SLUG, timeout_s=120)
    return HOSTILE_SLUG


def test_the_raw_key_never_stays_in_the_browser(watched: Watched, stack: Stack) -> None:
    key = stack.api_key
    page = watched.page
    page.goto(stack.base_url)
    expect(page.locator("#key-panel")).to_be_visible()
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#models a", has_text=DETECT)).to_be_visible()
    page.click(f"#models a:text-is('{DETECT}')")
    page.wait_for_url(f"**/models/{DETECT}")
    tab = TestTab(page, stack.base_url, key)
    page.wait_for_selector("#examples button")
    for example in ("bus.jpg", "zidane.jpg"):
        assert tab.click_example(example)["success"] is True
    stored: dict[str, Any] = page.evaluate(
        """() => ({
          local: JSON.stringify({...localStorage}),
          session: JSON.stringify({...sessionStorage}),
          cookie: document.cookie,
          inputs: [...document.querySelectorAll("input")].map((i) => i.value).join(" "),
        })"""
    )
    assert stored["local"] == "{}" and stored["session"] == "{}"
    assert stored["cookie"] == ""  # the token cookie is HttpOnly: scripts cannot read it
    assert key not in stored["inputs"]
    cookies = watched.context.cookies()
    assert [c["name"] for c in cookies] == ["trident_token"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert all(key not in c["value"] and key[12:] not in c["value"] for c in cookies)
    predicts = [u for u in watched.urls if u.endswith(PREDICT)]
    assert len(predicts) == 2
    assert all(key not in u and key[12:] not in u for u in watched.urls), watched.urls
    assert watched.violations(page) == []


def test_every_page_and_answer_carries_the_policy(watched: Watched, stack: Stack) -> None:
    page = watched.page
    made = page.request.post(
        f"{stack.base_url}/api/tokens", headers={"Authorization": f"Bearer {stack.api_key}"}
    )
    assert made.ok
    for path in ("/", f"/models/{DETECT}"):
        page.goto(stack.base_url + path)
        page.wait_for_load_state("networkidle")
        assert watched.violations(page) == [], path
    ours = [a for a in watched.answers if a.url.startswith(stack.base_url)]
    kinds = {a.url.rsplit(".", 1)[-1] for a in ours if "/static/" in a.url}
    assert {"js", "css"} <= kinds and any(a.url.endswith(PREDICT) is False and "/api/" in a.url for a in ours)
    for answer in ours:
        headers = answer.all_headers()
        policy = headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, answer.url
        assert "unsafe-inline" not in policy, answer.url
        assert headers.get("referrer-policy") == "no-referrer", answer.url


def test_an_injected_inline_script_is_blocked_and_reported(watched: Watched, stack: Stack) -> None:
    """The positive control: the violation listener does hear the policy refuse something."""
    page = watched.page
    page.goto(stack.base_url)
    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.__ran = 1";
        document.body.append(s); }"""
    )
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in watched.violations(page))


def test_a_class_name_with_html_is_shown_as_text(browser: Browser, stack: Stack, hostile_model: str) -> None:
    context = browser.new_context()
    context.add_init_script(WATCH_VIOLATIONS)
    tab = TestTab(context.new_page(), stack.base_url, stack.api_key).open(hostile_model)
    body = tab.click_example("bus.jpg")
    names = {p["class"] for p in body["predictions"]}
    assert names and all(n.startswith(PAYLOAD + SCRIPT) for n in names)
    first_cell = tab.page.locator("#predictions tbody tr .cls").first
    expect(first_cell).to_contain_text(PAYLOAD + SCRIPT)
    assert tab.page.locator("#predictions img, #predictions script, #stage img, #stage script").count() == 0
    tab.page.hover("#predictions tbody tr >> nth=0")
    assert tab.page.evaluate("window.__pwned") is None
    assert tab.page.evaluate("window.__violations") == []
    context.close()
    assert tab.unexpected_errors() == []
