"""What keeps Trident up without an orchestrator: the systemd unit for `trident run` on a box without
containers (checked by `systemd-analyze verify` where Debian's `systemd` is installed), and the
compose services' restart policies; and how every way of stopping Trident nests its timeouts."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings
from trident import runtime
from trident.stopping import CHILD_STOP_S, CLEANUP_S, FRONTEND_DRAIN_S, RUN_STOP_S, TRITON_EXIT_S

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
    assert float(service["TimeoutStopSec"]) > RUN_STOP_S  # the frontend's drain, then tritonserver's exit
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_environment_file_sets_only_real_settings_and_the_restart_ones_are_documented() -> None:
    names = [line.split("=", 1)[0] for line in ENV_FILE.read_text().splitlines() if line and line[0] != "#"]
    assert names and all(n.startswith("TRIDENT_") for n in names)
    assert [n for n in names if n.removeprefix("TRIDENT_").lower() not in Settings.model_fields] == []
    readme = (ROOT / "docs" / "operations" / "configuration.md").read_text()  # the configuration table
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


def _seconds(duration: str) -> float:
    """Compose's `1m30s` / `40s`."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, duration
    return 60 * int(parts[1] or 0) + int(parts[2] or 0)


def _k8s_pod_spec(name: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all((ROOT / "deploy" / f"{name}.yaml").read_text()):
        if doc and doc["kind"] == "Deployment":
            spec: dict[str, Any] = doc["spec"]["template"]["spec"]
            return spec
    raise AssertionError(f"no Deployment in deploy/{name}.yaml")


def _exit_timeout(args: list[str]) -> float:
    found = [a.split("=", 1)[1] for a in args if a.startswith("--exit-timeout-secs=")]
    assert len(found) == 1, args
    return float(found[0])


def stop_timeouts() -> dict[str, float]:
    """Every stop's limit, in seconds, as the code and the deploy files set it (the docs' table)."""
    services = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())["services"]
    frontend_pod, triton_pod = _k8s_pod_spec("frontend"), _k8s_pod_spec("triton")
    settings = Settings()
    local = runtime.server_command(settings, settings.runtime_dir, settings.model_repository)
    assert _exit_timeout(local) == TRITON_EXIT_S  # `trident run` and `trident triton` start it so
    return {
        "the API's drain": FRONTEND_DRAIN_S,
        "Triton's exit": TRITON_EXIT_S,
        "one child of `trident run` or `trident triton`": CHILD_STOP_S,
        "`trident run`": RUN_STOP_S,
        "systemd (`systemctl stop`)": float(unit()["Service"]["TimeoutStopSec"]),
        "compose `frontend` (`docker compose stop`)": _seconds(services["frontend"]["stop_grace_period"]),
        "compose `triton`": _seconds(services["triton"]["stop_grace_period"]),
        "compose `triton-cpu`": _seconds(services["triton-cpu"]["stop_grace_period"]),
        "Kubernetes frontend pods": frontend_pod["terminationGracePeriodSeconds"],
        "Kubernetes Triton pods": triton_pod["terminationGracePeriodSeconds"],
        "compose `triton`'s own exit": _exit_timeout(services["triton"]["command"]),
        "Kubernetes Triton's own exit": _exit_timeout(triton_pod["containers"][0]["args"]),
    }


def test_each_stop_leaves_the_one_inside_it_time_to_finish() -> None:
    t = stop_timeouts()
    margin = 5  # the API's shutdown after its drain; a process exiting; a slow box
    assert (
        t["one child of `trident run` or `trident triton`"] >= max(FRONTEND_DRAIN_S, TRITON_EXIT_S) + margin
    )
    assert t["`trident run`"] >= 2 * (CHILD_STOP_S + CLEANUP_S)  # the API, then Triton, one by one
    assert t["systemd (`systemctl stop`)"] >= t["`trident run`"] + margin
    assert t["compose `frontend` (`docker compose stop`)"] >= FRONTEND_DRAIN_S + margin
    assert t["Kubernetes frontend pods"] >= FRONTEND_DRAIN_S + margin
    for outer, inner in [
        ("compose `triton`", "compose `triton`'s own exit"),
        ("Kubernetes Triton pods", "Kubernetes Triton's own exit"),
    ]:
        assert t[inner] == TRITON_EXIT_S and t[outer] >= t[inner] + margin, outer
    # `trident triton` (the triton-cpu image's command) waits one child's stop, then cleans up
    assert t["compose `triton-cpu`"] >= CHILD_STOP_S + CLEANUP_S + margin


def test_the_api_drains_for_the_stated_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from trident import cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    cli.serve(host=None, port=None, workers=None, metrics_dir_ready=True)
    assert seen["timeout_graceful_shutdown"] == FRONTEND_DRAIN_S


def test_the_readmes_stop_timeouts_table_states_the_values_in_force() -> None:
    readme = (ROOT / "docs" / "operations" / "supervisor.md").read_text()
    table = readme[readme.index("## Stop timeouts") :].split("\n\n")[2]
    rows = {
        cells[0]: float(re.match(r"\d+", cells[2])[0])  # type: ignore[index]
        for line in table.splitlines()[2:]
        if (cells := [c.strip() for c in line.strip("|").split("|")])
    }
    stated = {k: v for k, v in stop_timeouts().items() if "own exit" not in k}
    assert rows == stated
