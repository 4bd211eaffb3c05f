"""The shipped Prometheus config and alert rules pass `promtool` (no Triton needed; the queries
themselves run against a real Prometheus in tests/integration/test_prometheus.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DOCKER = Path(__file__).parents[2] / "docker"


def test_promtool_accepts_the_shipped_config_and_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: .ci/run installs the Debian package prometheus"
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        done = subprocess.run(
            [promtool, *args], cwd=DOCKER / "prometheus", capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
