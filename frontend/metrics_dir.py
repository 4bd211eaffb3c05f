"""The directory where uvicorn workers keep their metrics, prepared before they start.

Kept apart from `frontend.metrics` on purpose: importing prometheus_client in the parent process
with `PROMETHEUS_MULTIPROC_DIR` set, before the directory exists, would fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(workers: int) -> Path | None:
    """An empty `PROMETHEUS_MULTIPROC_DIR` for `workers` processes (None: one worker, in-memory metrics).

    An operator-set directory is used whatever the worker count, and emptied (stale files would
    add a previous run's counts); otherwise several workers get a fresh temporary one.
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if workers <= 1 and not configured:
        return None
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="trident-metrics-"))
    if path.is_dir():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path
