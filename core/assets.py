"""Ultralytics' example images (`bus.jpg`, `zidane.jpg`), found without importing ultralytics:
importing it imports torch, which the serving path never loads."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache
def ultralytics_assets() -> Path | None:
    """The wheel's `assets/` folder, located by the import system; None without the wheel."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "assets"
