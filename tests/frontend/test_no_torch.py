"""The serving process never carries torch: its modules import none of it (no Triton needed;
`tests/integration/test_lifecycle.py` checks the running frontend's memory maps)."""

from __future__ import annotations

import subprocess
import sys


def test_frontend_modules_do_not_import_torch() -> None:
    code = (
        "import sys, frontend.app, frontend.api.predict, pipeline.decode, postprocess.detect\n"
        "frontend.app.create_app()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'ultralytics', 'torchvision'})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
