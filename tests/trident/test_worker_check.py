"""`trident worker --check`, the worker service's health check: does a sandbox open here?

The compose stack's worker container needs an unmasked `/proc` for bubblewrap; without it every
export fails. The check runs the export's own `bwrap` command line on a Python that does nothing,
so a container set up wrongly is unhealthy before any upload comes (the container case itself:
`tests/containers/test_compose.py::test_ul_cloud_predict_through_the_proxy_exports_in_the_worker_sandbox`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def check(path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "trident", "worker", "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_check_passes_where_a_sandbox_opens() -> None:
    done = check(os.environ["PATH"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a sandbox opens here" in done.stderr


def test_the_check_fails_with_bubblewraps_own_words_where_none_opens(tmp_path: Path) -> None:
    """A bubblewrap its confinement refuses (what a container that masks `/proc` makes of it)."""
    refused = tmp_path / "bwrap"
    refused.write_text(
        '#!/bin/sh\necho "bwrap: Can\'t mount proc on /newroot/proc: Operation not permitted" >&2\nexit 1\n'
    )
    refused.chmod(0o755)
    done = check(f"{tmp_path}:{os.environ['PATH']}")
    assert done.returncode == 1
    assert "no sandbox opens here: bwrap: Can't mount proc on /newroot/proc" in done.stderr


def test_the_check_fails_where_bubblewrap_is_missing(tmp_path: Path) -> None:
    python = Path(sys.executable).parent
    done = check(f"{python}:{tmp_path}")  # neither /usr/bin nor /bin: no bwrap
    assert done.returncode == 1 and "bubblewrap (bwrap) is not installed" in done.stderr
