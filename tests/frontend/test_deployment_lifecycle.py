"""The deployment lifecycle as a state machine, against a fake Triton and SQLite: every move the
table allows and every one it refuses, the status each change writes while it runs, the 409 a
refused action answers, one Triton request for predicts and the probe, and the reconciliation
that repairs what a dead process left (tests/frontend/test_deployment_crash.py kills one)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from ultralytics_platform import types as platform_types

from core.modelspec import CANDIDATES_OUTPUT, CONF_INPUT
from core.slug import Slug
from frontend.deployments.deployer import STEPS, triton_name
from frontend.deployments.lifecycle import ACTIONS, STALE_AFTER_S, Conflict, Lifecycle
from frontend.errors import DeployFailed
from frontend.serving.inference import blank_tensor, triton_request
from store.audit import Actor
from store.deployments import (
    IN_PROGRESS,
    STATUSES,
    TRANSITIONS,
    Deployment,
    DeploymentStore,
    IllegalTransition,
    deployments,
)
from tests.helpers.aio import run
from tests.helpers.deployments import OWNER, FakeTriton, export, lifecycle

ACTOR = Actor.key("k1", "127.0.0.1")


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "models"
    repo.mkdir()
    export(repo, "p", "a")
    export(repo, "p", "b", candidates=True)
    export(repo, "p", "broken", broken=True)
    return repo


@pytest.fixture
def triton(repository: Path) -> FakeTriton:
    return FakeTriton(repository)


@pytest.fixture
def lc(tmp_path: Path, repository: Path, triton: FakeTriton) -> Lifecycle:
    return lifecycle(f"sqlite:///{tmp_path / 'keys.db'}", repository, triton)


@pytest.fixture
def serving(lc: Lifecycle) -> Deployment:
    """A deployment of model a, ready."""
    ready = deploy(lc, row(lc.store))
    assert ready is not None
    return ready


def row(store: DeploymentStore, status: str = "creating", name: str = "shop") -> Deployment:
    return store.create(
        owner=OWNER,
        name=name,
        display_name=name,
        project="p",
        model="a",
        version="1",
        triton_name="",
        status=status,
        instances=1,
        memory_gi=2,
        region="us",
    )


def force(store: DeploymentStore, deployment_id: str, **values: object) -> None:
    """What another process wrote (no table checks: the state it left)."""
    with store.engine.begin() as db:
        db.execute(deployments.update().where(deployments.c.id == deployment_id).values(**values))


def deploy(lc: Lifecycle, d: Deployment, model: str = "a", action: str = "deploy") -> Deployment | None:
    source = lc.deployer.source(Slug(OWNER, "p", model))
    return run(lc.deploy(d.id, source, action, ACTOR, "k1"))


def act(lc: Lifecycle, d: Deployment, action: str) -> object:
    if action == "stop":
        return run(lc.stop(d.id, ACTOR, "k1"))
    return deploy(lc, d, "b", action)


def folders(repository: Path) -> set[str]:
    return {p.name for p in repository.glob("dep~*")}


def statuses_at_steps(lc: Lifecycle, d: Deployment) -> dict[str, str]:
    """The status the database holds at each step a change passes (filled as it runs)."""
    seen: dict[str, str] = {}

    def record(step: str) -> None:
        current = lc.store.by_id(d.id)
        seen.setdefault(step, current.status if current else "deleted")

    lc.deployer.checkpoint = record
    return seen


# --- the table


def test_the_statuses_are_the_platforms() -> None:
    """The SDK's deployment status is exactly the table's statuses, each with its moves."""
    hints = typing.get_type_hints(platform_types.DeploymentsRetrieveResponseDeployment)
    assert set(typing.get_args(hints["status"])) == set(STATUSES) == set(TRANSITIONS)
    assert all(set(targets) <= set(STATUSES) for targets in TRANSITIONS.values())


@pytest.mark.parametrize("to", STATUSES)
@pytest.mark.parametrize("start", STATUSES)
def test_every_move_the_table_allows_is_made_and_every_other_refused(
    lc: Lifecycle, start: str, to: str
) -> None:
    d = row(lc.store, start)
    if to in TRANSITIONS[start]:
        moved = lc.store.transition(d.id, to, expect=start, status_message="why")
        assert (moved.status, moved.status_message) == (to, "why")
    else:
        with pytest.raises(IllegalTransition) as refused:
            lc.store.transition(d.id, to, status_message="why")
        assert (refused.value.found, refused.value.to) == (start, to)
        after = lc.store.by_id(d.id)
        assert after is not None and (after.status, after.status_message) == (start, "")


def test_a_move_expecting_a_status_another_process_changed_is_refused(lc: Lifecycle) -> None:
    d = row(lc.store, "deploying")
    force(lc.store, d.id, status="ready")  # another process finished the deploy meanwhile
    with pytest.raises(IllegalTransition) as refused:
        lc.store.transition(d.id, "failed", expect="deploying")
    assert refused.value.found == "ready"
    assert lc.store.by_id(d.id).status == "ready"  # type: ignore[union-attr]


def test_a_status_changes_only_by_a_transition(lc: Lifecycle) -> None:
    d = row(lc.store)
    with pytest.raises(AssertionError):
        lc.store.update(d.id, status="ready")


# --- each change writes what is true while it runs


def test_create_is_creating_then_deploying_while_it_loads_then_ready(
    lc: Lifecycle, repository: Path, triton: FakeTriton
) -> None:
    d = row(lc.store)
    seen = statuses_at_steps(lc, d)
    ready = deploy(lc, d)
    assert seen["materialized"] == seen["loaded"] == seen["probed"] == "deploying"
    assert ready is not None and ready.status == "ready" and ready.deployed_at is not None
    assert ready.triton_name == triton_name(OWNER, "shop", 1)
    assert folders(repository) == {ready.triton_name} and triton.loaded >= {ready.triton_name}
    assert lc.deployer.route(ready) == ready.triton_name


def test_a_first_deploy_that_fails_leaves_failed_and_nothing_on_disk(
    lc: Lifecycle, repository: Path, triton: FakeTriton
) -> None:
    d = row(lc.store)
    with pytest.raises(DeployFailed) as failed:
        deploy(lc, d, "broken")
    found = lc.store.by_id(d.id)
    assert found is not None and found.status == "failed"
    assert "failed to load or warm up" in found.status_message == failed.value.detail
    assert folders(repository) == set() and not {n for n in triton.loaded if n.startswith("dep~")}


def test_a_replace_stays_ready_and_switches_then_retires_the_old_model(
    lc: Lifecycle, serving: Deployment, repository: Path, triton: FakeTriton
) -> None:
    seen = statuses_at_steps(lc, serving)
    replaced = deploy(lc, serving, "b", "replace")
    assert tuple(seen) == STEPS
    assert set(seen.values()) == {"ready"}  # the old model serves until the switch
    assert replaced is not None and (replaced.model, replaced.previous) == ("b", "p/a@1")
    assert folders(repository) == {replaced.triton_name} == {triton_name(OWNER, "shop", 2)}
    assert serving.triton_name not in triton.loaded
    assert lc.deployer.route(replaced) == replaced.triton_name


def test_a_failed_replace_keeps_serving_and_says_why(
    lc: Lifecycle, serving: Deployment, repository: Path, triton: FakeTriton
) -> None:
    with pytest.raises(DeployFailed):
        deploy(lc, serving, "broken", "replace")
    found = lc.store.by_id(serving.id)
    assert found is not None and (found.status, found.model, found.triton_name) == (
        "ready",
        "a",
        serving.triton_name,
    )
    assert "protobuf parsing failed" in found.status_message
    assert folders(repository) == {serving.triton_name} and serving.triton_name in triton.loaded


def test_stop_is_stopping_while_it_drains_then_stopped_and_start_deploys_again(
    lc: Lifecycle, serving: Deployment, repository: Path, triton: FakeTriton
) -> None:
    seen = statuses_at_steps(lc, serving)
    assert run(lc.stop(serving.id, ACTOR, "k1")) is True
    assert seen == {"routed": "stopping", "unloaded": "stopping", "removed": "stopping"}
    assert lc.store.by_id(serving.id).status == "stopped"  # type: ignore[union-attr]
    assert folders(repository) == set() and serving.triton_name not in triton.loaded
    assert run(lc.stop(serving.id, ACTOR, "k1")) is False  # already stopped: nothing to do

    seen = statuses_at_steps(lc, serving)
    started = deploy(lc, serving, "a", "start")
    assert seen["loaded"] == "deploying"
    assert started is not None and started.status == "ready" and started.previous is None
    assert folders(repository) == {started.triton_name} == {triton_name(OWNER, "shop", 2)}


def test_delete_removes_the_row_and_the_model_whatever_the_status(
    lc: Lifecycle, serving: Deployment, repository: Path
) -> None:
    run(lc.delete(serving, ACTOR, "k1"))
    assert lc.store.by_id(serving.id) is None and folders(repository) == set()
    assert deploy(lc, serving) is None  # a deploy of a deleted deployment does nothing


# --- refusals


NO_OPS = {("start", "ready"), ("stop", "stopped")}  # answered "already running" / "already stopped"


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_action_from_every_status_is_done_or_refused_with_409(
    lc: Lifecycle, repository: Path, status: str, action: str
) -> None:
    """Refused: nothing is touched (a `creating`, `deploying` or `stopping` one is another
    change's, in flight in another process)."""
    d = row(lc.store, status)
    if status in ACTIONS[action]:
        act(lc, d, action)
        assert lc.store.by_id(d.id).status == ("stopped" if action == "stop" else "ready")  # type: ignore[union-attr]
        return
    if (action, status) in NO_OPS:
        assert act(lc, d, action) in (False, lc.store.by_id(d.id))
        assert lc.store.by_id(d.id) == d
        return
    with pytest.raises(Conflict) as refused:
        act(lc, d, action)
    assert refused.value.status_code == 409
    assert refused.value.detail == f"the deployment is {status}: it cannot {action} now"
    assert lc.store.by_id(d.id) == d
    assert folders(repository) == set()


def test_a_refusal_answers_in_the_platform_error_envelope() -> None:
    response = Conflict("the deployment is deploying: it cannot stop now").to_response("platform")
    assert response.status_code == 409
    assert json.loads(response.body) == {"error": "Conflict: the deployment is deploying: it cannot stop now"}


def test_a_stop_of_a_deleted_deployment_is_refused(lc: Lifecycle) -> None:
    d = row(lc.store)
    lc.store.delete(d.id)
    with pytest.raises(Conflict, match="deleted"):
        run(lc.stop(d.id, ACTOR, "k1"))


# --- one Triton request


def test_the_probe_sends_the_request_predicts_send(lc: Lifecycle, triton: FakeTriton) -> None:
    """A model taking `conf` gets it and is asked for its candidates, as a predict asks."""
    ready = deploy(lc, row(lc.store), "b")
    assert ready is not None
    served = run(lc.deployer.served(ready.triton_name, ready))
    inputs, outputs = triton_request(served, blank_tensor(served), 0.25)
    assert sorted(inputs) == sorted(["images", CONF_INPUT]) and outputs == [CANDIDATES_OUTPUT]
    assert inputs["images"].shape == (1, 3, 32, 32) and inputs["images"].dtype == np.float32
    assert triton.requests[-1] == (ready.triton_name, sorted(inputs), outputs)


# --- reconciliation


def test_reconcile_finishes_stale_changes_and_leaves_young_ones(
    lc: Lifecycle, serving: Deployment, repository: Path, triton: FakeTriton
) -> None:
    ready = serving
    stuck = {status: row(lc.store, status, name=status) for status in IN_PROGRESS}
    orphan = repository / triton_name(OWNER, "gone", 1)
    orphan.mkdir()
    triton.loaded.add(orphan.name)
    assert run(lc.reconcile()) == []  # all young: maybe another process's change in flight
    assert {lc.store.by_id(d.id).status for d in stuck.values()} == set(IN_PROGRESS)  # type: ignore[union-attr]

    done = run(lc.reconcile(time.time() + STALE_AFTER_S + 1))
    assert sorted(done) == sorted(
        [
            "alice/creating: creating -> failed",
            "alice/deploying: deploying -> failed",
            "alice/stopping: stopping -> stopped",
            f"removed {orphan.name}",
        ]
    )
    after = {s: lc.store.by_id(d.id) for s, d in stuck.items()}
    assert after["deploying"].status_message == "interrupted while deploying: start it again"  # type: ignore[union-attr]
    assert folders(repository) == {ready.triton_name} and orphan.name not in triton.loaded
    assert lc.store.by_id(ready.id).status == "ready"  # type: ignore[union-attr]


def test_reconcile_spares_an_old_folder_a_process_is_still_retiring(lc: Lifecycle, repository: Path) -> None:
    """Retiring touches the folder first: while it drains, it is young again."""
    name = triton_name(OWNER, "draining", 3)
    old = time.time() - STALE_AFTER_S - 10

    async def reconcile_while_draining() -> list[str]:
        lc.deployer.in_flight[name] = 1  # a request still on it
        retiring = asyncio.create_task(lc.deployer.retire(name))
        await asyncio.sleep(0.05)
        done = await lc.reconcile()
        lc.deployer.in_flight[name] = 0
        await retiring
        return done

    (repository / name).mkdir()
    os.utime(repository / name, (old, old))
    assert run(reconcile_while_draining()) == []
    assert not (repository / name).exists()  # the retire removed it once drained
    (repository / name).mkdir()
    os.utime(repository / name, (old, old))
    assert run(lc.reconcile()) == [f"removed {name}"]  # nobody's: removed


def test_reconcile_fails_a_ready_deployment_whose_folder_is_gone(
    lc: Lifecycle, serving: Deployment, repository: Path
) -> None:
    ready = serving
    for path in sorted((repository / ready.triton_name).rglob("*"), reverse=True):
        path.unlink() if not path.is_dir() or path.is_symlink() else path.rmdir()
    (repository / ready.triton_name).rmdir()
    force(lc.store, ready.id, updated_at=datetime.now(UTC) - timedelta(days=1))
    done = run(lc.reconcile())
    assert done == ["alice/shop: ready -> failed"]
    assert lc.store.by_id(ready.id).status == "failed"  # type: ignore[union-attr]
