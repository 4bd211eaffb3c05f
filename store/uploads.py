"""Weights brought through the API: projects, models, upload sessions and export jobs, in the key
store's database (`schema.projects`, `user_models`, `uploads`, `export_jobs`).

An upload session is a signed, single-use, expiring `PUT` target: its secret is in the URL and
only its SHA-256 is kept (like keys). Taking a session for a `PUT` is one conditional `UPDATE`
(`open` -> `receiving`), so a second `PUT` to the same URL finds it taken, whoever sends it.

An export job is a row. A worker takes one with a lease it renews while it works; on PostgreSQL
the candidate row is read `FOR UPDATE SKIP LOCKED` and taken with a conditional `UPDATE`, so two
workers never take the same job (on SQLite the conditional `UPDATE` alone decides). A job whose
lease ran out (its worker died) is taken again while it has had fewer than `MAX_ATTEMPTS` tries,
then failed with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from store.clock import Clock, utc, utc_now
from store.schema import export_jobs, projects, uploads, user_models

MAX_ATTEMPTS = 2  # a job whose worker dies is taken again once, then failed
ACTIVE = ("queued", "running")
JOB_STATUSES = ("queued", "running", "completed", "failed", "cancelled")


def _advance(db: sa.Connection, session_id: str, was: str, now: str) -> bool:
    """Move an upload session from `was` to `now`, if it still is `was` (one of two racing
    requests wins); whether it moved."""
    moved = db.execute(
        uploads.update().where(uploads.c.id == session_id, uploads.c.status == was).values(status=now)
    ).rowcount
    return bool(moved)


class Exists(Exception):
    """A project of that name is there already."""


class UploadRefused(Exception):
    """A `PUT` to an upload URL that cannot take it: `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ProjectRow:
    id: str
    owner: str
    project: str
    name: str
    visibility: str
    created_at: datetime


@dataclass(frozen=True)
class ModelRow:
    id: str
    owner: str
    project: str
    model: str
    name: str
    task: str | None
    checkpoint: str | None
    checkpoint_name: str
    checkpoint_bytes: int | None
    checkpoint_sha256: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.project}/{self.model}"


@dataclass(frozen=True)
class UploadRow:
    id: str
    model_id: str
    user: str
    filename: str
    total_bytes: int
    status: str
    received_bytes: int
    sha256: str | None
    md5: str | None
    error: str
    expires_at: datetime
    token_hash: str = field(repr=False)


@dataclass(frozen=True)
class JobRow:
    id: str
    model_id: str
    format: str
    status: str
    attempts: int
    lease_owner: str | None
    progress: int
    step: str
    error: str
    parity: dict[str, Any]
    version: int | None
    file: str | None
    file_bytes: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


R = TypeVar("R")


def _from_row(cls: type[R], row: Any, **values: Any) -> R:
    """`cls` from a row whose columns share its field names; `values` for the others (times made
    aware: SQLite hands back naive ones)."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    found = {n: getattr(row, n) for n in names if n not in values}
    found |= {n: utc(v) for n, v in found.items() if n.endswith("_at")}
    return cls(**found, **values)


def _project(row: Any) -> ProjectRow:
    return _from_row(ProjectRow, row)


def _model(row: Any) -> ModelRow:
    return _from_row(ModelRow, row)


def _upload(row: Any) -> UploadRow:
    return _from_row(UploadRow, row, user=row.user_name)


def _job(row: Any) -> JobRow:
    return _from_row(JobRow, row, parity=json.loads(row.parity or "{}"))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UploadStore:
    """The rows, on the key store's engine (its schema creates the tables)."""

    def __init__(self, engine: sa.Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock

    # --- projects

    def project(self, owner: str, project: str) -> ProjectRow | None:
        query = sa.select(projects).where(projects.c.owner == owner, projects.c.project == project)
        with self.engine.connect() as db:
            row = db.execute(query).first()
        return None if row is None else _project(row)

    def projects(self, owner: str) -> list[ProjectRow]:
        query = sa.select(projects).where(projects.c.owner == owner).order_by(projects.c.created_at)
        with self.engine.connect() as db:
            return [_project(r) for r in db.execute(query)]

    def create_project(self, owner: str, project: str, name: str, visibility: str) -> ProjectRow:
        """A new project; `Exists` when the owner has one of that name."""
        values = {
            "id": "pr_" + secrets.token_hex(8),
            "owner": owner,
            "project": project,
            "name": name[:128],
            "visibility": visibility,
            "created_at": self.clock(),
        }
        try:
            with self.engine.begin() as db:
                db.execute(projects.insert().values(**values))
        except sa.exc.IntegrityError:
            raise Exists(f"{owner}/{project}") from None
        found = self.project(owner, project)
        assert found is not None
        return found

    # --- models

    def create_model(self, owner: str, project: str, model: str, name: str, task: str | None) -> ModelRow:
        """A new model in the project, named `model` or, when that is taken, `model-2`, `model-3`..."""
        for n in range(1, 1000):
            slug = model if n == 1 else f"{model[:60]}-{n}"
            now = self.clock()
            values = {
                "id": "md_" + secrets.token_hex(8),
                "owner": owner,
                "project": project,
                "model": slug,
                "name": name[:128] or slug,
                "task": task,
                "created_at": now,
                "updated_at": now,
            }
            try:
                with self.engine.begin() as db:
                    db.execute(user_models.insert().values(**values))
            except sa.exc.IntegrityError:
                continue
            found = self.model_by_id(str(values["id"]))
            assert found is not None
            return found
        raise Exists(f"{owner}/{project}/{model}")

    def model(self, owner: str, project: str, model: str) -> ModelRow | None:
        where = (user_models.c.owner == owner, user_models.c.project == project, user_models.c.model == model)
        with self.engine.connect() as db:
            row = db.execute(sa.select(user_models).where(*where)).first()
        return None if row is None else _model(row)

    def model_by_id(self, model_id: str) -> ModelRow | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(user_models).where(user_models.c.id == model_id)).first()
        return None if row is None else _model(row)

    def models(self, owner: str, project: str | None = None) -> list[ModelRow]:
        query = sa.select(user_models).where(user_models.c.owner == owner).order_by(user_models.c.created_at)
        if project is not None:
            query = query.where(user_models.c.project == project)
        with self.engine.connect() as db:
            return [_model(r) for r in db.execute(query)]

    def remove_model(self, model: ModelRow) -> None:
        """The model's uploaded checkpoint and its rows (jobs and sessions too); its published
        versions are the caller's to remove (they live in the repository)."""
        if model.checkpoint:
            shutil.rmtree(Path(model.checkpoint).parent, ignore_errors=True)
        with self.engine.begin() as db:
            db.execute(export_jobs.delete().where(export_jobs.c.model_id == model.id))
            db.execute(uploads.delete().where(uploads.c.model_id == model.id))
            db.execute(user_models.delete().where(user_models.c.id == model.id))

    # --- upload sessions

    def open_upload(
        self, model_id: str, user: str, filename: str, total_bytes: int, ttl_s: float
    ) -> tuple[UploadRow, str]:
        """A new session and the secret its URL carries (not kept)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        session_id = "up_" + secrets.token_hex(12)
        with self.engine.begin() as db:
            db.execute(
                uploads.insert().values(
                    id=session_id,
                    model_id=model_id,
                    user_name=user,
                    token_hash=_token_hash(token),
                    filename=filename[:256],
                    total_bytes=total_bytes,
                    status="open",
                    expires_at=now + timedelta(seconds=ttl_s),
                    created_at=now,
                )
            )
        found = self.upload(session_id)
        assert found is not None
        return found, token

    def upload(self, session_id: str) -> UploadRow | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(uploads).where(uploads.c.id == session_id)).first()
        return None if row is None else _upload(row)

    def take_for_put(self, session_id: str, token: str) -> UploadRow:
        """The session, now `receiving`, for the one `PUT` its URL allows; `UploadRefused` (403 a
        wrong or missing secret, 410 expired, 409 used already) otherwise."""
        found = self.upload(session_id)
        if found is None or not hmac.compare_digest(found.token_hash, _token_hash(token)):
            raise UploadRefused(403, "this upload URL is not valid (unknown session or wrong signature)")
        now = self.clock()
        if found.expires_at <= now:
            raise UploadRefused(410, f"this upload URL expired at {found.expires_at:%Y-%m-%dT%H:%M:%SZ}")
        with self.engine.begin() as db:
            taken = _advance(db, session_id, "open", "receiving")
        if not taken:
            raise UploadRefused(409, "this upload URL was used already; ask for a new one")
        return found

    def _set_upload(self, session_id: str, **values: Any) -> None:
        with self.engine.begin() as db:
            db.execute(uploads.update().where(uploads.c.id == session_id).values(**values))

    def received(self, session_id: str, size: int, sha256: str, md5: str) -> None:
        self._set_upload(session_id, status="received", received_bytes=size, sha256=sha256, md5=md5)

    def fail_upload(self, session_id: str, reason: str) -> None:
        self._set_upload(session_id, status="failed", error=reason[:512])

    def accept(self, session_id: str, checkpoint: str, fmt: str = "onnx") -> JobRow:
        """The received checkpoint becomes its model's, and an export of it is queued (one step)."""
        found = self.upload(session_id)
        assert found is not None and found.sha256 is not None
        now = self.clock()
        with self.engine.begin() as db:
            if not _advance(db, session_id, "received", "completed"):
                raise UploadRefused(409, "this upload was completed already")
            db.execute(
                user_models.update()
                .where(user_models.c.id == found.model_id)
                .values(
                    checkpoint=checkpoint,
                    checkpoint_name=found.filename,
                    checkpoint_bytes=found.received_bytes,
                    checkpoint_sha256=found.sha256,
                    updated_at=now,
                )
            )
            job_id = self._insert_job(db, found.model_id, fmt, now)
        job = self.job(job_id)
        assert job is not None
        return job

    # --- export jobs

    def _insert_job(self, db: sa.Connection, model_id: str, fmt: str, now: datetime) -> str:
        job_id = "ex_" + secrets.token_hex(8)
        db.execute(
            export_jobs.insert().values(
                id=job_id,
                model_id=model_id,
                format=fmt,
                status="queued",
                step="queued",
                created_at=now,
                updated_at=now,
            )
        )
        return job_id

    def queue(self, model_id: str, fmt: str) -> JobRow:
        with self.engine.begin() as db:
            job_id = self._insert_job(db, model_id, fmt, self.clock())
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: str) -> JobRow | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(export_jobs).where(export_jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def jobs(self, model_id: str) -> list[JobRow]:
        query = (
            sa.select(export_jobs)
            .where(export_jobs.c.model_id == model_id)
            .order_by(export_jobs.c.created_at.desc(), export_jobs.c.id)
        )
        with self.engine.connect() as db:
            return [_job(r) for r in db.execute(query)]

    def claim(self, owner: str, lease_s: float) -> JobRow | None:
        """The oldest job this worker may run, now `running` under its lease; None when none waits.

        A running job whose lease ran out lost its worker: taken again if it has had fewer than
        `MAX_ATTEMPTS` tries, else failed with the reason (and the next one is looked at)."""
        while True:
            now = self.clock()
            takeable = sa.or_(
                export_jobs.c.status == "queued",
                sa.and_(export_jobs.c.status == "running", export_jobs.c.lease_until <= now),
            )
            query = (
                sa.select(
                    export_jobs.c.id, export_jobs.c.status, export_jobs.c.attempts, export_jobs.c.lease_until
                )
                .where(takeable)
                .order_by(export_jobs.c.created_at, export_jobs.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            with self.engine.begin() as db:
                row = db.execute(query).first()
                if row is None:
                    return None
                same = (
                    export_jobs.c.id == row.id,
                    export_jobs.c.status == row.status,
                    export_jobs.c.attempts == row.attempts,
                )
                if row.status == "running" and row.attempts >= MAX_ATTEMPTS:
                    reason = (
                        f"the worker running this export stopped mid-job {row.attempts} times "
                        "(killed, out of memory, or its machine went away); not retried again"
                    )
                    db.execute(
                        export_jobs.update()
                        .where(*same)
                        .values(
                            status="failed", error=reason, lease_owner=None, updated_at=now, completed_at=now
                        )
                    )
                    continue
                step = "starting" if row.status == "queued" else "starting again: the previous worker stopped"
                taken = db.execute(
                    export_jobs.update()
                    .where(*same)
                    .values(
                        status="running",
                        attempts=row.attempts + 1,
                        lease_owner=owner,
                        lease_until=now + timedelta(seconds=lease_s),
                        step=step,
                        progress=0,
                        started_at=now,
                        updated_at=now,
                    )
                ).rowcount
            if taken:
                return self.job(row.id)

    def _mine(self, job_id: str, owner: str) -> tuple[sa.ColumnElement[bool], ...]:
        return (
            export_jobs.c.id == job_id,
            export_jobs.c.lease_owner == owner,
            export_jobs.c.status == "running",
        )

    def renew(
        self, job_id: str, owner: str, lease_s: float, progress: int | None = None, step: str = ""
    ) -> bool:
        """Extend this worker's lease (and say how far it got); False when the job is no longer its
        own (cancelled, or taken by another worker after this one stalled)."""
        now = self.clock()
        values: dict[str, Any] = {"lease_until": now + timedelta(seconds=lease_s), "updated_at": now}
        if progress is not None:
            values |= {"progress": progress, "step": step[:64]}
        with self.engine.begin() as db:
            return bool(
                db.execute(export_jobs.update().where(*self._mine(job_id, owner)).values(**values)).rowcount
            )

    def complete(
        self, job_id: str, owner: str, version: int, file: str, file_bytes: int, parity: dict[str, Any]
    ) -> bool:
        now = self.clock()
        values = {
            "status": "completed",
            "progress": 100,
            "step": "published",
            "version": version,
            "file": file,
            "file_bytes": file_bytes,
            "parity": json.dumps(parity, sort_keys=True),
            "lease_owner": None,
            "updated_at": now,
            "completed_at": now,
        }
        with self.engine.begin() as db:
            return bool(
                db.execute(export_jobs.update().where(*self._mine(job_id, owner)).values(**values)).rowcount
            )

    def fail(self, job_id: str, owner: str, reason: str) -> bool:
        now = self.clock()
        values = {
            "status": "failed",
            "error": reason[:1024],
            "lease_owner": None,
            "updated_at": now,
            "completed_at": now,
        }
        with self.engine.begin() as db:
            return bool(
                db.execute(export_jobs.update().where(*self._mine(job_id, owner)).values(**values)).rowcount
            )

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not finished; False when it had."""
        now = self.clock()
        with self.engine.begin() as db:
            return bool(
                db.execute(
                    export_jobs.update()
                    .where(export_jobs.c.id == job_id, export_jobs.c.status.in_(ACTIVE))
                    .values(
                        status="cancelled",
                        lease_owner=None,
                        step="cancelled",
                        updated_at=now,
                        completed_at=now,
                    )
                ).rowcount
            )

    def delete_job(self, job_id: str) -> None:
        with self.engine.begin() as db:
            db.execute(export_jobs.delete().where(export_jobs.c.id == job_id))


def model_status(jobs: list[JobRow]) -> str:
    """The Platform's model status from its newest export (`jobs` newest first): running,
    completed, failed, or pending (nothing uploaded yet)."""
    if not jobs:
        return "pending"
    newest = jobs[0].status
    return {"queued": "running", "cancelled": "failed"}.get(newest, newest)


def deployments_serving(
    engine: sa.Engine, owner: str, project: str, model: str, version: str | None = None
) -> list[str]:
    """The names of the deployments that serve `owner/project/model` (at `version`, else any):
    the files they link to must stay."""
    from store.schema import deployments

    where = [deployments.c.owner == owner, deployments.c.project == project, deployments.c.model == model]
    if version is not None:
        where.append(deployments.c.version == version)
    with engine.connect() as db:
        return [
            r.name
            for r in db.execute(sa.select(deployments.c.name).where(*where).order_by(deployments.c.name))
        ]
