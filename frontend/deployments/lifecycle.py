"""A deployment's lifecycle as a state machine: each change moves its status along
`store.deployments.TRANSITIONS` (refused with 409 when the status it has does not allow it), and
each status is written when it is true: `deploying` while a model loads and nothing serves,
`stopping` while the served model drains and unloads. A replace of a `ready` deployment stays
`ready` throughout: the old model serves until the switch.

A process can die at any step (`deployer.STEPS`); `reconcile` then brings the repository and the
database back into agreement: a change left in progress longer than any change takes is finished
(`stopping` -> `stopped`) or failed (`creating`/`deploying` -> `failed`), and a `dep~` folder no
`ready` deployment serves is unloaded and removed once nothing changed it for as long. The age is
what makes it safe beside other processes: a change still running is younger than that.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio.to_thread

from frontend.deployments.deployer import Deployer, Source
from frontend.errors import Conflict, DeployFailed
from frontend.serving.triton import LOAD_TIMEOUT_S
from store.audit import SYSTEM, Actor
from store.clock import Clock
from store.deployments import (
    IN_PROGRESS,
    Change,
    Deployment,
    IllegalTransition,
    LogLine,
    Telemetry,
    process_log_line,
)

log = logging.getLogger("trident.deployments")
STALE_AFTER_S = 2 * LOAD_TIMEOUT_S  # no change runs longer: past it, its process is gone
# the statuses each action starts from (its moves are then `TRANSITIONS`'); a `creating`
# deployment belongs to its create's own `deploy`, a `deploying` or `stopping` one to a change in flight
ACTIONS: dict[str, tuple[str, ...]] = {
    "deploy": ("creating",),
    "start": ("stopped", "failed"),
    "replace": ("ready", "stopped", "failed"),
    "rollback": ("ready", "stopped", "failed"),
    "stop": ("ready", "failed"),
}


def refused(action: str, error: IllegalTransition) -> Conflict:
    if error.found is None:
        return Conflict(f"the deployment was deleted; cannot {action} it")
    return Conflict(f"the deployment is {error.found}: it cannot {action} now")


class Lifecycle:
    """Creates, replaces, starts, stops and deletes deployments, and reconciles after a crash."""

    def __init__(self, deployer: Deployer, telemetry: Telemetry, clock: Clock) -> None:
        self.deployer = deployer
        self.store = deployer.store
        self._telemetry = telemetry
        self._clock = clock

    def journal(self, deployment: Deployment, severity: str, event: str, **fields: Any) -> None:
        """A lifecycle log line: the process log and the deployment's recent lines."""
        at = self._clock()
        line = {"event": event, "deployment": f"{deployment.owner}/{deployment.name}", **fields}
        level = logging.ERROR if severity == "ERROR" else logging.INFO
        log.log(level, process_log_line(at, severity, **line))
        self._telemetry.log(LogLine(deployment.id, at, severity, json.dumps(line)))

    async def _move(
        self, current: Deployment, to: str, action: str, change: Change | None = None, **values: Any
    ) -> Deployment:
        try:
            return await anyio.to_thread.run_sync(
                lambda: self.store.transition(current.id, to, change, current.status, **values)
            )
        except IllegalTransition as exc:
            raise refused(action, exc) from None

    async def _current(self, deployment_id: str) -> Deployment | None:
        return await anyio.to_thread.run_sync(self.store.by_id, deployment_id)

    async def deploy(
        self, deployment_id: str, source: Source, action: str, actor: Actor, key_id: str | None
    ) -> Deployment | None:
        """Load, warm and probe `source`, switch the deployment to it and retire what it served
        (`action`: deploy, start, replace, rollback). A deployment that serves nothing is
        `deploying` meanwhile. On failure it keeps serving what it did (or is `failed` if it served
        nothing) and `DeployFailed` says why. None: the deployment was deleted meanwhile."""
        deployer = self.deployer
        async with deployer.lock(deployment_id):
            current = await self._current(deployment_id)
            if current is None:
                return None
            if action == "start" and current.status == "ready":
                return current  # started meanwhile
            if current.status not in ACTIONS[action]:
                raise refused(action, IllegalTransition(current.status, "deploying"))
            serving = current.status == "ready"
            if not serving:
                current = await self._move(current, "deploying", action)
            try:
                name, latency = await deployer.bring_up(current, source, current.instances)
            except DeployFailed as exc:
                failed = Change(actor, key_id, action, f"failed: {exc.detail}")
                to = "ready" if serving else "failed"
                await self._move(current, to, action, failed, status_message=exc.detail)
                self.journal(current, "ERROR", action, error=exc.detail, serving=current.triton_name or None)
                raise
            switch_to: dict[str, Any] = {
                "triton_name": name,
                "project": source.slug.project,
                "model": source.slug.model,
                "version": source.version,
                "status_message": "",
                "deployed_at": self._clock(),
            }
            if current.triton_name and action != "start":  # it served something before
                switch_to["previous"] = f"{current.project}/{current.model}@{current.version}"
            done = Change(actor, key_id, action, f"{source.slug}@{source.version}")
            try:
                moved = await self._move(current, "ready", action, done, **switch_to)
            except Conflict:  # another process stopped or failed it meanwhile
                await deployer.retire(name)
                raise
            deployer.checkpoint("switched")
            self.journal(
                current,
                "INFO",
                action,
                model=str(source.slug),
                version=source.version,
                warmupLatencyMs=latency,
            )
            await deployer.switch(current.id, name, current.triton_name if serving else "")
            return moved

    async def stop(self, deployment_id: str, actor: Actor, key_id: str | None) -> bool:
        """`stopping` while the served model drains and unloads, then `stopped`; False when it
        was stopped already."""
        async with self.deployer.lock(deployment_id):
            current = await self._current(deployment_id)
            if current is not None and current.status == "stopped":
                return False
            if current is None or current.status not in ACTIONS["stop"]:
                found = current.status if current else None
                raise refused("stop", IllegalTransition(found, "stopping"))
            stopping = await self._move(current, "stopping", "stop", Change(actor, key_id, "stop"))
            await self.deployer.switch(
                current.id, "", current.triton_name if current.status == "ready" else ""
            )
            await self._move(stopping, "stopped", "stop")
        self.journal(current, "INFO", "stop")
        return True

    async def delete(self, deployment: Deployment, actor: Actor, key_id: str | None) -> None:
        """Remove the endpoint (whatever its status), its counts, its lines and its model."""
        change = Change(actor, key_id, "delete", f"{deployment.owner}/{deployment.name}")
        async with self.deployer.lock(deployment.id):
            current = await self._current(deployment.id) or deployment
            await anyio.to_thread.run_sync(self.store.delete, deployment.id, change)
            self._telemetry.forget(deployment.id)  # no orphan rows from what this process still holds
            await self.deployer.switch(deployment.id, "", current.triton_name)
        self.deployer.forget(deployment.id)
        name = f"{deployment.owner}/{deployment.name}"
        log.info(process_log_line(self._clock(), "INFO", event="delete", deployment=name))

    async def reconcile(self, now: float | None = None) -> list[str]:
        """Make the repository and the database agree again after a process died mid-change; only
        what is older than `STALE_AFTER_S` at `now` (epoch seconds) is touched, so it is safe to
        run in every process at any time. Returns what it did, one line each."""
        now = time.time() if now is None else now
        done: list[str] = []
        for d in await anyio.to_thread.run_sync(self.store.every):
            if d.status in IN_PROGRESS and now - d.updated_at.timestamp() > STALE_AFTER_S:
                to = "stopped" if d.status == "stopping" else "failed"
                why = "" if to == "stopped" else f"interrupted while {d.status}: start it again"
                if await self._settle(d, to, why):
                    done.append(f"{d.owner}/{d.name}: {d.status} -> {to}")
        folders = await anyio.to_thread.run_sync(self.deployer.folders)
        rows = await anyio.to_thread.run_sync(self.store.every)
        for d in rows:
            gone = d.status == "ready" and d.triton_name not in folders
            stale = now - d.updated_at.timestamp() > STALE_AFTER_S
            if gone and stale and await self._settle(d, "failed", "its model folder is gone: start it again"):
                done.append(f"{d.owner}/{d.name}: ready -> failed")
        serving = {d.triton_name for d in rows if d.status == "ready"}
        for name, changed in sorted(folders.items()):
            if name not in serving and now - changed > STALE_AFTER_S:
                await self.deployer.discard_orphan(name)
                done.append(f"removed {name}")
        for line in done:
            log.info(process_log_line(self._clock(), "INFO", event="reconcile", did=line))
        return done

    async def _settle(self, d: Deployment, to: str, why: str) -> bool:
        """One reconciling move, in the audit trail; False when another process moved it first."""
        change = Change(SYSTEM, None, "reconcile", f"{d.status} -> {to}")
        try:
            await anyio.to_thread.run_sync(
                lambda: self.store.transition(d.id, to, change, d.status, status_message=why)
            )
        except IllegalTransition:
            return False
        return True
