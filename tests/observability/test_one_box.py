"""What keeps Trident up without an orchestrator: the systemd unit for `trident run` on a box without
containers (checked by `systemd-analyze verify` where Debian's `systemd` is installed), and the
compose services' restart policies."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.settings import Settings

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "deploy" / "systemd" / "trident.service"
ENV_FILE = ROOT / "deploy" / "systemd" / "trident.env"
CHECKOUT = "/opt/trident"  # where the unit expects the checkout


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_trident_run_as_a_non_root_user_restarting_on_failure() -> None:
    service = unit()["Service"]
    assert service["ExecStart"] == f"{CHECKOUT}/.venv/bin/trident run"
    assert service["User"] not in {"root", "0"} and service["Group"] == service["User"]
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/trident/trident.env"
    assert service["KillMode"] == "mixed"  # SIGTERM to `trident run` only: it stops its children in order
    assert float(service["TimeoutStopSec"]) > 40 + 40  # the frontend's drain, then tritonserver's exit
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_environment_file_sets_only_real_settings_and_the_restart_ones_are_documented() -> None:
    names = [line.split("=", 1)[0] for line in ENV_FILE.read_text().splitlines() if line and line[0] != "#"]
    assert names and all(n.startswith("TRIDENT_") for n in names)
    assert [n for n in names if n.removeprefix("TRIDENT_").lower() not in Settings.model_fields] == []
    readme = (ROOT / "README.md").read_text()
    for name in ("TRIDENT_RESTART_LIMIT", "TRIDENT_RESTART_WINDOW_S", "TRIDENT_RESTART_BACKOFF_MAX_S"):
        assert name in names and f"| `{name}` |" in readme, name


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    local = tmp_path / UNIT.name  # the same unit, pointing at this checkout, whose trident exists
    local.write_text(UNIT.read_text().replace(CHECKOUT, str(ROOT)))
    assert (ROOT / ".venv" / "bin" / "trident").exists()
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, check=False
    )
    # it exits 0 on unknown keys and bad values too, only warning: any line about the unit is a failure
    problems = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


def test_every_compose_service_has_a_restart_policy() -> None:
    services = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())["services"]
    for name, service in services.items():
        expected = {"no"} if name == "exporter" else {"unless-stopped", "always", "on-failure"}
        assert service.get("restart") in expected, name
