"""The screenshots' manifest (`tests/helpers/screens.py`) and the check `make test` runs after the
site is built (`scripts/check_docs_screens.py`): it passes on the pictures this run took and fails
on one missing, one more, one changed, and a manifest of another run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import screens

ROOT = Path(__file__).parents[2]
CHECK = ROOT / "scripts" / "check_docs_screens.py"


def take(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def test_the_first_picture_of_a_run_clears_what_an_earlier_run_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(screens.RUN_VARIABLE, "run-1")
    screens.save("a.png", take(b"first a"), tmp_path)
    screens.save("b.png", take(b"first b"), tmp_path)
    monkeypatch.setenv(screens.RUN_VARIABLE, "run-2")
    screens.save("a.png", take(b"second a"), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["a.png"]  # b.png was run 1's
    manifest = json.loads((tmp_path / screens.MANIFEST).read_text())
    assert manifest == {"run": "run-2", "screens": {"a.png": screens.sha256(tmp_path / "a.png")}}


def check(run: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(CHECK),
            "--run",
            run,
            "--screens",
            str(folder / "docs"),
            "--site",
            str(folder / "site"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two pictures taken by run `r1`, and a site built from them."""
    monkeypatch.setenv(screens.RUN_VARIABLE, "r1")
    for name in ("detect.png", "depth.png"):
        screens.save(name, take(name.encode()), tmp_path / "docs")
    shutil.copytree(tmp_path / "docs", tmp_path / "site" / "assets" / "screens")
    return tmp_path


def test_the_check_passes_on_the_pictures_of_this_run(built: Path) -> None:
    result = check("r1", built)
    assert result.returncode == 0, result.stderr
    assert "the 2 this run took" in result.stdout


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("another run", "the manifest is of run 'r1', not of this run 'r2'"),
        ("missing", "depth.png: in the manifest, not in the site"),
        ("one more", "old.png: in the site, not taken by this run"),
        ("changed", "detect.png: the site's picture is not the one this run took"),
        ("no manifest", "manifest.json is missing"),
    ],
)
def test_the_check_fails_on_a_picture_this_run_did_not_take(built: Path, change: str, problem: str) -> None:
    site = built / "site" / "assets" / "screens"
    run = "r2" if change == "another run" else "r1"
    if change == "missing":
        (site / "depth.png").unlink()
    if change == "one more":
        (site / "old.png").write_bytes(b"a picture from an earlier run")
    if change == "changed":
        (site / "detect.png").write_bytes(b"drawn by hand")
    if change == "no manifest":
        (built / "docs" / screens.MANIFEST).unlink()
    result = check(run, built)
    assert result.returncode == 1
    assert problem in result.stderr
