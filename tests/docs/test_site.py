"""The documentation site builds with `mkdocs build --strict`, and the build fails when it should:
a broken link, a broken anchor, a page left out of the nav, a picture no test took (negative
controls, each on a copy of the docs in a temporary folder). The README stays short and its links
resolve. `make test` builds the real site after pytest (`make docs`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
MKDOCS = Path(sys.executable).with_name("mkdocs")
SCREEN = re.compile(r"assets/screens/([\w.-]+\.png)")
TINY_PNG = ROOT / "tests" / "fixtures" / "tiny.png"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def site_copy(folder: Path) -> Path:
    """What `mkdocs build` reads, copied into `folder`; the pages' screenshots, which the browser
    tests of this run may not have taken yet, stand in as a tiny PNG each."""
    shutil.copytree(ROOT / "docs", folder / "docs", ignore=shutil.ignore_patterns("screens"))
    for name in ("mkdocs.yml", "scripts/docs_hooks.py", "benchmarks/README.md", "demo/README.md"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, folder / name)
    screens = folder / "docs" / "assets" / "screens"
    screens.mkdir(parents=True)
    for page in (folder / "docs").rglob("*.md"):
        for name in SCREEN.findall(page.read_text()):
            shutil.copyfile(TINY_PNG, screens / name)
    return folder


def build(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [str(MKDOCS), "build", "--strict"], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


BREAKAGES = {
    "broken link": (
        lambda docs: append(docs / "tests.md", "\nSee [the old page](no-such-page.md).\n"),
        "contains a link 'no-such-page.md', but the target is not found",
    ),
    "broken anchor": (
        lambda docs: append(docs / "tests.md", "\nSee [errors](api/errors.md#no-such-heading).\n"),
        "does not contain an anchor '#no-such-heading'",
    ),
    "orphan page": (
        lambda docs: (docs / "orphan.md").write_text("# A page no one can reach\n"),
        'not included in the "nav" configuration:\n  - orphan.md',
    ),
    "picture no test took": (
        lambda docs: (docs / "assets" / "screens" / "test-tab-detect-bus.png").unlink(),
        "contains a link 'assets/screens/test-tab-detect-bus.png', but the target is not found",
    ),
}


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """The control of the negative controls: the same copy, unbroken, builds without a warning."""
    result = build(site_copy(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    site = tmp_path / "site"
    assert (site / "operations" / "docker" / "index.html").exists()
    # what the hooks generate from the code: the options table and the OpenAPI document
    options = (site / "api" / "options" / "index.html").read_text()
    assert "<code>track_session</code>" in options and "<!-- predict-options -->" not in options
    assert '"/api/models/{owner}/{project}/{model}/predict"' in (site / "openapi.json").read_text()
    # benchmarks/README.md is included, not copied
    assert (
        "Overload: where a refused request spends its time"
        in (site / "benchmarks" / "index.html").read_text()
    )


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_site_fails_the_strict_build(tmp_path: Path, breakage: str) -> None:
    folder = site_copy(tmp_path)
    breaking, warning = BREAKAGES[breakage]
    breaking(folder / "docs")
    result = build(folder)
    assert result.returncode != 0
    assert warning in result.stderr, result.stderr
    assert "Aborted with 1 warnings in strict mode" in result.stdout + result.stderr


def test_the_docs_show_the_test_tab_of_each_task_and_of_a_video() -> None:
    shown = {name for page in (ROOT / "docs").rglob("*.md") for name in SCREEN.findall(page.read_text())}
    for task in ("detect", "segment", "pose", "semantic", "depth", "video"):
        assert any(f"-{task}" in name for name in shown), task


def test_the_readme_is_short_and_says_how_to_run_and_test() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    assert "make run" in readme and "make test" in readme
    assert re.search(r"!\[[^\]]+\]\(docs/assets/test-tab\.png\)", readme), "the Test tab's picture"
    assert "curl " in readme and "Platform(" in readme


def test_every_link_of_the_readme_resolves_to_a_file() -> None:
    readme = (ROOT / "README.md").read_text()
    local = [t.split("#", 1)[0] for t in LINK.findall(readme) if not re.match(r"[a-z]+:", t)]
    assert len(local) >= 10, "the README links into the docs"
    assert [t for t in local if not (ROOT / t).is_file()] == []
    assert any(t.startswith("docs/") for t in local)
