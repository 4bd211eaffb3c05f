"""A process killed at any step of a replace (or a stop) leaves, once a restart reconciles, a model
repository and a database that agree: each `ready` deployment's own folder and no other `dep~`
folder, no status left in progress, and the deployment serving the model its row names."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.slug import Slug
from frontend.deployments.deployer import STEPS
from frontend.deployments.lifecycle import STALE_AFTER_S, Lifecycle
from store.audit import SYSTEM
from store.deployments import IN_PROGRESS
from tests.helpers.aio import run
from tests.helpers.deployment_crash import CRASHED
from tests.helpers.deployments import OWNER, FakeTriton, export, lifecycle

ROOT = Path(__file__).resolve().parents[2]
STOP_STEPS = ("routed", "unloaded", "removed")


def served_model(lc: Lifecycle, deployment_id: str) -> str:
    """What the deployment answers with: a probe through the model its row names."""
    d = lc.store.by_id(deployment_id)
    assert d is not None
    served = run(lc.deployer.served(lc.deployer.route(d), d))
    run(lc.deployer.probe(served))
    return served.slug.model


def agree(lc: Lifecycle, repository: Path) -> None:
    rows = lc.store.every()
    assert not [d.status for d in rows if d.status in IN_PROGRESS]
    assert {p.name for p in repository.glob("dep~*")} == {d.triton_name for d in rows if d.status == "ready"}


@pytest.mark.parametrize(
    ("action", "step"), [("replace", step) for step in STEPS] + [("stop", step) for step in STOP_STEPS]
)
def test_a_restart_after_a_crash_at_any_step_reconciles(tmp_path: Path, action: str, step: str) -> None:
    repository, database = tmp_path / "models", f"sqlite:///{tmp_path / 'keys.db'}"
    repository.mkdir()
    export(repository, "p", "a")
    export(repository, "p", "b")
    first = lifecycle(database, repository, FakeTriton(repository))
    d = first.store.create(
        owner=OWNER, name="shop", display_name="Shop", project="p", model="a", version="1",
        triton_name="", status="creating", instances=1, memory_gi=2, region="us",
    )  # fmt: skip
    run(first.deploy(d.id, first.deployer.source(Slug(OWNER, "p", "a")), "deploy", SYSTEM, None))

    crashed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.helpers.deployment_crash",
            database,
            str(repository),
            d.id,
            action,
            step,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == CRASHED, crashed.stderr  # it died at that step

    restarted = lifecycle(database, repository, FakeTriton(repository).start())  # Triton loads what is there
    run(restarted.reconcile(time.time() + STALE_AFTER_S + 1))
    agree(restarted, repository)
    after = restarted.store.by_id(d.id)
    assert after is not None
    if action == "stop":
        assert after.status == "stopped"
        return
    switched = STEPS.index(step) >= STEPS.index("switched")
    assert after.status == "ready" and served_model(restarted, d.id) == ("b" if switched else "a")
    # and it goes on: another replace succeeds and leaves one folder
    run(restarted.deploy(d.id, restarted.deployer.source(Slug(OWNER, "p", "a")), "replace", SYSTEM, None))
    agree(restarted, repository)
    assert served_model(restarted, d.id) == "a" and len(list(repository.glob("dep~*"))) == 1
