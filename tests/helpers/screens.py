"""The browser tests' screenshots, saved where the documentation shows them, with a manifest of
this run's pictures and their SHA-256.

`docs/assets/screens/` is git-ignored: nothing in it is drawn by hand or kept from an earlier run.
The first screenshot of a run empties the folder, so a page the tests no longer photograph leaves
no stale picture behind, and every picture is recorded in `manifest.json` under the run's id.
`make test` names the run (`DOCS_SCREENS_RUN`), builds the site after pytest and checks with
`scripts/check_docs_screens.py` that the site's pictures are exactly this manifest's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

SCREENS = Path(__file__).parents[2] / "docs" / "assets" / "screens"
MANIFEST = "manifest.json"
RUN_VARIABLE = "DOCS_SCREENS_RUN"  # set by `make test`; xdist's run id otherwise, then this process's
_PROCESS_RUN = uuid.uuid4().hex


def run_id() -> str:
    return os.environ.get(RUN_VARIABLE) or os.environ.get("PYTEST_XDIST_TESTRUNUID") or _PROCESS_RUN


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(name: str, take: Callable[[Path], None], folder: Path = SCREENS) -> Path:
    """Take one screenshot (`take` writes the PNG at the path it is given) into `folder` and record
    it in the manifest of this run; the first one of a run clears what an earlier run left."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the two xdist workers may both take pictures
        manifest_path = folder / MANIFEST
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if manifest.get("run") != run_id():
            for old in folder.glob("*.png"):
                old.unlink()
            manifest = {"run": run_id(), "screens": {}}
        path = folder / name
        take(path)
        manifest["screens"][name] = sha256(path)
        staged = manifest_path.with_suffix(".tmp")
        staged.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        staged.replace(manifest_path)
    return path
