"""Dedicated endpoints' state: the deployments, their per-minute request aggregates and their recent
log lines, in the key store's database (its own tables, created under the key store's schema lock).

A deployment binds one owner's endpoint name to one exported model version, served by a Triton
model of its own (`triton_name`, see `frontend.deployments`). Requests are counted in memory and
written in batches (`Telemetry.flush`): one aggregate row per deployment, minute and process (no
two processes write the same row, so no lock is needed), and log lines capped per deployment.
Latencies are kept as histogram counts over `LATENCY_BUCKETS_MS`, the buckets of `/metrics`'
deployment histogram, so percentiles over any range come from the same numbers.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from store import audit
from store.audit import Actor
from store.clock import iso, utc
from store.schema import create_schema, deployment_logs, deployment_minutes, deployments

LATENCY_BUCKETS_MS = (
    5,
    10,
    25,
    50,
    75,
    100,
    150,
    200,
    250,
    300,
    400,
    500,
    750,
    1000,
    2500,
    5000,
    10000,
    30000,
)
SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
STATUSES = ("creating", "deploying", "ready", "stopping", "stopped", "failed")  # the Platform's
# The lifecycle, declared once: status -> the statuses it may become (`DeploymentStore.transition`
# refuses any other move; `frontend.deployments.lifecycle` drives them). `creating`: the row exists,
# nothing is loaded yet; `deploying`: a model is loading and nothing serves; `ready`: a model serves
# (a replace loads its successor beside it, so `ready -> ready` is a switch); `stopping`: the model
# drains and unloads; `stopped`, `failed`: nothing is loaded. `ready -> failed` and the moves out of
# `creating`/`deploying`/`stopping` into `failed`/`stopped` are also what a restart's reconciliation
# writes for work a dead process left half done.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "creating": ("deploying", "failed"),
    "deploying": ("ready", "failed"),
    "ready": ("ready", "stopping", "failed"),
    "stopping": ("stopped",),
    "stopped": ("deploying",),
    "failed": ("deploying", "stopping"),
}
IN_PROGRESS = ("creating", "deploying", "stopping")  # true only while a process works on it
RANGES = {"1h": (60, 1), "6h": (360, 5), "24h": (1440, 15), "7d": (10080, 60), "30d": (43200, 360)}
MINUTE = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True)
class Deployment:
    id: str
    owner: str
    name: str
    display_name: str
    project: str
    model: str
    version: str
    previous: str | None
    triton_name: str
    status: str
    status_message: str
    instances: int
    memory_gi: int
    region: str
    rate_limit: int | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deployed_at: datetime | None

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.project}/{self.model}"


def _deployment(row: Any) -> Deployment:
    return Deployment(
        id=row.id,
        owner=row.owner,
        name=row.name,
        display_name=row.display_name,
        project=row.project,
        model=row.model,
        version=row.version,
        previous=row.previous,
        triton_name=row.triton_name,
        status=row.status,
        status_message=row.status_message,
        instances=row.instances,
        memory_gi=row.memory_gi,
        region=row.region,
        rate_limit=row.rate_limit,
        metadata=json.loads(row.metadata or "{}"),
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        deployed_at=utc(row.deployed_at),
    )


@dataclass(frozen=True)
class Change:
    """Who changes a deployment and how: an audit entry (`deployment.<action>`) written in the
    same transaction as the change."""

    actor: Actor
    key_id: str | None
    action: str
    detail: str = ""

    def record(self, db: sa.Connection, user: str) -> None:
        audit.record(
            db, datetime.now(UTC), self.actor, f"deployment.{self.action}", user, self.key_id, self.detail
        )


class DeploymentExists(Exception):
    """The owner already has a deployment of that name."""


class IllegalTransition(Exception):
    """The deployment's status does not allow the move (`found` is None: the row is gone)."""

    def __init__(self, found: str | None, to: str) -> None:
        super().__init__(f"{found or 'a deleted deployment'} cannot become {to}")
        self.found = found
        self.to = to


def may_become(status: str, to: str) -> bool:
    return to in TRANSITIONS.get(status, ())


class DeploymentStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_schema(engine)

    def create(self, change: Change | None = None, **values: Any) -> Deployment:
        now = datetime.now(UTC)
        values = {"id": uuid.uuid4().hex[:16], "created_at": now, "updated_at": now, **values}
        values["metadata"] = json.dumps(values.get("metadata") or {})
        try:
            with self.engine.begin() as db:
                db.execute(deployments.insert().values(**values))
                if change is not None:
                    change.record(db, values["owner"])
        except sa.exc.IntegrityError:
            raise DeploymentExists(values["name"]) from None
        found = self.get(values["owner"], values["name"])
        assert found is not None
        return found

    def get(self, owner: str, name: str) -> Deployment | None:
        query = sa.select(deployments).where(deployments.c.owner == owner, deployments.c.name == name)
        with self.engine.connect() as db:
            row = db.execute(query).first()
        return _deployment(row) if row is not None else None

    def of_owner(self, owner: str, status: str | None = None, limit: int = 100) -> list[Deployment]:
        query = sa.select(deployments).where(deployments.c.owner == owner)
        if status:
            query = query.where(deployments.c.status == status)
        with self.engine.connect() as db:
            rows = db.execute(query.order_by(deployments.c.created_at).limit(limit)).all()
        return [_deployment(r) for r in rows]

    def by_id(self, deployment_id: str) -> Deployment | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(deployments).where(deployments.c.id == deployment_id)).first()
        return _deployment(row) if row is not None else None

    def every(self) -> list[Deployment]:
        """All deployments of all owners (the reconciliation compares them with the repository)."""
        with self.engine.connect() as db:
            return [_deployment(r) for r in db.execute(sa.select(deployments))]

    def update(self, deployment_id: str, change: Change | None = None, **values: Any) -> None:
        """Change what is not the status (that moves only by `transition`)."""
        assert "status" not in values, "a status changes by transition()"
        if "metadata" in values:
            values["metadata"] = json.dumps(values["metadata"])
        with self.engine.begin() as db:
            db.execute(
                deployments.update()
                .where(deployments.c.id == deployment_id)
                .values(**values, updated_at=datetime.now(UTC))
            )
            if change is not None:
                change.record(db, self._owner(db, deployment_id))

    def transition(
        self,
        deployment_id: str,
        to: str,
        change: Change | None = None,
        expect: str | None = None,
        **values: Any,
    ) -> Deployment:
        """Move the deployment to status `to` (with `values`) if `TRANSITIONS` allows it from the
        status it has (and that status is `expect`, when given: the one the caller read); the
        check is the UPDATE's own condition, so of two processes racing for one move only one
        wins. Raises `IllegalTransition` naming the status found."""
        sources = [s for s in STATUSES if may_become(s, to) and expect in (None, s)]
        if "metadata" in values:
            values["metadata"] = json.dumps(values["metadata"])
        with self.engine.begin() as db:
            moved = db.execute(
                deployments.update()
                .where(deployments.c.id == deployment_id, deployments.c.status.in_(sources))
                .values(**values, status=to, updated_at=datetime.now(UTC))
            )
            if moved.rowcount != 1:
                found = db.execute(sa.select(deployments.c.status).where(deployments.c.id == deployment_id))
                raise IllegalTransition(found.scalar_one_or_none(), to)
            if change is not None:
                change.record(db, self._owner(db, deployment_id))
        moved_to = self.by_id(deployment_id)
        assert moved_to is not None
        return moved_to

    @staticmethod
    def _owner(db: sa.Connection, deployment_id: str) -> str:
        owner: str = db.execute(
            sa.select(deployments.c.owner).where(deployments.c.id == deployment_id)
        ).scalar_one()
        return owner

    def delete(self, deployment_id: str, change: Change | None = None) -> None:
        with self.engine.begin() as db:
            if change is not None:
                change.record(db, self._owner(db, deployment_id))
            for table in (deployment_logs, deployment_minutes):
                db.execute(table.delete().where(table.c.deployment_id == deployment_id))
            db.execute(deployments.delete().where(deployments.c.id == deployment_id))


@dataclass
class _Minute:
    requests: int = 0
    errors: int = 0
    latency_ms_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))

    def add(self, other: _Minute) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latency_ms_sum += other.latency_ms_sum
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


def bucket_index(latency_ms: float) -> int:
    return next(
        (i for i, bound in enumerate(LATENCY_BUCKETS_MS) if latency_ms <= bound), len(LATENCY_BUCKETS_MS)
    )


def percentile(buckets: list[int], q: float) -> float:
    """The `q` quantile of a bucketed histogram, interpolated linearly inside its bucket (so it is
    exact to within that bucket's width)."""
    total = sum(buckets)
    if not total:
        return 0.0
    rank, seen = q * total, 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            if i == len(LATENCY_BUCKETS_MS):
                return float(LATENCY_BUCKETS_MS[-1])
            low = LATENCY_BUCKETS_MS[i - 1] if i else 0.0
            return round(low + (LATENCY_BUCKETS_MS[i] - low) * (rank - seen) / count, 2)
        seen += count
    return float(LATENCY_BUCKETS_MS[-1])


def process_log_line(at: datetime, severity: str, **fields: Any) -> str:
    """A deployment's event as the process log writes it: one JSON object, time and severity first
    (the names log collectors such as Cloud Logging read)."""
    return json.dumps({"timestamp": iso(at), "severity": severity, **fields})


@dataclass(frozen=True)
class LogLine:
    deployment_id: str
    at: datetime
    severity: str
    message: str
    method: str | None = None
    url: str | None = None
    status: int | None = None
    latency_ms: float | None = None


class Telemetry:
    """Per-minute aggregates and log lines, counted in memory and written by `flush`."""

    def __init__(self, engine: sa.Engine, max_lines: int) -> None:
        self._engine = engine
        self._max_lines = max_lines
        self._writer = secrets.token_hex(8)
        self._minutes: dict[tuple[str, str], _Minute] = {}
        self._lines: list[LogLine] = []
        self._lock = threading.Lock()

    def request(self, deployment_id: str, at: datetime, status: int, latency_ms: float) -> None:
        with self._lock:
            minute = self._minutes.setdefault((deployment_id, f"{at:{MINUTE}}"), _Minute())
            minute.requests += 1
            minute.errors += status >= 500
            minute.latency_ms_sum += latency_ms
            minute.buckets[bucket_index(latency_ms)] += 1

    def log(self, line: LogLine) -> None:
        with self._lock:
            self._lines.append(line)

    def forget(self, deployment_id: str) -> None:
        """Drop what is pending for a deleted deployment (its rows are gone)."""
        with self._lock:
            self._minutes = {k: v for k, v in self._minutes.items() if k[0] != deployment_id}
            self._lines = [line for line in self._lines if line.deployment_id != deployment_id]

    def flush(self) -> None:
        """Write what is pending; on failure it stays pending for the next try."""
        with self._lock:
            minutes, self._minutes = self._minutes, {}
            lines, self._lines = self._lines, []
        if not minutes and not lines:
            return
        try:
            with self._engine.begin() as db:
                for (deployment_id, minute), counts in minutes.items():
                    self._merge(db, deployment_id, minute, counts)
                if lines:
                    db.execute(deployment_logs.insert(), [vars(line) for line in lines])
                for deployment_id in {line.deployment_id for line in lines}:
                    self._prune(db, deployment_id)
        except (sa.exc.DBAPIError, sa.exc.TimeoutError):
            with self._lock:
                for key, counts in minutes.items():
                    self._minutes.setdefault(key, _Minute()).add(counts)
                self._lines[:0] = lines

    def _merge(self, db: sa.Connection, deployment_id: str, minute: str, counts: _Minute) -> None:
        where = (
            deployment_minutes.c.deployment_id == deployment_id,
            deployment_minutes.c.minute == minute,
            deployment_minutes.c.writer == self._writer,
        )
        row = db.execute(sa.select(deployment_minutes).where(*where)).first()
        if row is None:
            db.execute(
                deployment_minutes.insert().values(
                    deployment_id=deployment_id,
                    minute=minute,
                    writer=self._writer,
                    requests=counts.requests,
                    errors=counts.errors,
                    latency_ms_sum=counts.latency_ms_sum,
                    buckets=json.dumps(counts.buckets),
                )
            )
            return
        counts.add(_Minute(row.requests, row.errors, row.latency_ms_sum, json.loads(row.buckets)))
        db.execute(
            deployment_minutes.update()
            .where(*where)
            .values(
                requests=counts.requests,
                errors=counts.errors,
                latency_ms_sum=counts.latency_ms_sum,
                buckets=json.dumps(counts.buckets),
            )
        )

    def _prune(self, db: sa.Connection, deployment_id: str) -> None:
        """Keep the newest `max_lines` lines of the deployment."""
        cutoff = (
            sa.select(deployment_logs.c.id)
            .where(deployment_logs.c.deployment_id == deployment_id)
            .order_by(deployment_logs.c.id.desc())
            .offset(self._max_lines)
            .limit(1)
            .scalar_subquery()
        )
        db.execute(
            deployment_logs.delete().where(
                deployment_logs.c.deployment_id == deployment_id, deployment_logs.c.id <= cutoff
            )
        )

    def lines(self, deployment_id: str, severities: Iterable[str], limit: int) -> list[LogLine]:
        """The newest lines first, only of `severities` when any are named."""
        query = sa.select(deployment_logs).where(deployment_logs.c.deployment_id == deployment_id)
        wanted = [s for s in severities if s]
        if wanted:
            query = query.where(deployment_logs.c.severity.in_(wanted))
        query = query.order_by(deployment_logs.c.id.desc()).limit(limit)
        with self._engine.connect() as db:
            rows = db.execute(query).all()
        return [
            LogLine(
                r.deployment_id,
                utc(r.at),
                r.severity,
                r.message,
                r.method,
                r.url,
                r.status,
                r.latency_ms,
            )
            for r in rows
        ]

    def summary(self, deployment_id: str, range_: str, now: datetime) -> dict[str, Any]:
        """The Platform's metrics answer (`DeploymentsMetricsResponse`, full view) for `range_`."""
        minutes, step = RANGES[range_]
        end = now.replace(second=0, microsecond=0)
        start = end - timedelta(minutes=minutes - 1)
        query = sa.select(deployment_minutes).where(
            deployment_minutes.c.deployment_id == deployment_id,
            deployment_minutes.c.minute >= f"{start:{MINUTE}}",
        )
        with self._engine.connect() as db:
            rows = db.execute(query).all()
        total = _Minute()
        slots = [_Minute() for _ in range(-(-minutes // step))]
        for row in rows:
            counts = _Minute(row.requests, row.errors, row.latency_ms_sum, json.loads(row.buckets))
            total.add(counts)
            at = datetime.strptime(row.minute, MINUTE).replace(tzinfo=UTC)
            index = int((at - start).total_seconds() // 60) // step
            if 0 <= index < len(slots):
                slots[index].add(counts)
        stamps = [iso(start + timedelta(minutes=i * step)) for i in range(len(slots))]

        def series(values: list[float]) -> list[dict[str, Any]]:
            return [{"timestamp": t, "value": v} for t, v in zip(stamps, values, strict=True)]

        n = total.requests
        return {
            "deploymentId": deployment_id,
            "timeRange": {"start": iso(start), "end": iso(end + timedelta(minutes=1))},
            "summary": {
                "totalRequests": n,
                "errorCount": total.errors,
                "errorRate": round(total.errors / n, 4) if n else 0.0,
                "avgLatencyMs": round(total.latency_ms_sum / n, 2) if n else 0.0,
                "p50LatencyMs": percentile(total.buckets, 0.5),
                "p95LatencyMs": percentile(total.buckets, 0.95),
                "p99LatencyMs": percentile(total.buckets, 0.99),
            },
            "timeSeries": {
                "requests": series([s.requests for s in slots]),
                "errors": series([s.errors for s in slots]),
                "latencyP50": series([percentile(s.buckets, 0.5) for s in slots]),
                "latencyP95": series([percentile(s.buckets, 0.95) for s in slots]),
                "cpuUtilization": [],  # not measured per deployment (Triton's instances share the host)
                "memoryUtilization": [],
                "instanceCount": [],
            },
        }
