"""Camera streams' definitions in the key store's database (`schema.streams`), so they outlive the
process that runs them.

A stream is one key's: its model, its source URL (kept as given, credentials included, because the
runner must reconnect with them; it is never logged nor answered, see `frontend.streams.sources`),
its predict options, `max_fps`, the contract its events are rendered in, and whether it is paused.
The runner writes what is true of it (`status`, `error`) when that changes, so any process can
answer `GET`.

One process runs a stream at a time: the one holding its lease. A runner renews its leases every
few seconds (`claim`, with `lease_s` to live); a stream whose lease expired (its process died) is
taken by the next process that looks. Taking and renewing are one conditional `UPDATE`, so two
processes never both hold one.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from store.clock import Clock, utc, utc_now
from store.schema import streams

STATUSES = ("connecting", "running", "reconnecting", "paused", "failed")


@dataclass(frozen=True)
class StreamRow:
    id: str
    key_id: str
    user: str
    model: str
    source: str  # as given: may hold credentials
    options: dict[str, Any]
    max_fps: float
    format: str
    paused: bool
    status: str
    error: str
    created_at: datetime
    updated_at: datetime
    lease_owner: str | None
    webhook_url: str | None = field(default=None, repr=False)  # as given: may hold a token
    webhook_secret: str | None = field(default=None, repr=False)  # the HMAC key of its signatures


def _row(row: Any) -> StreamRow:
    return StreamRow(
        id=row.id,
        key_id=row.key_id,
        user=row.user_name,
        model=row.model,
        source=row.source,
        options=json.loads(row.options),
        max_fps=float(row.max_fps),
        format=row.format,
        paused=bool(row.paused),
        status=row.status,
        error=row.error,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        lease_owner=row.lease_owner,
        webhook_url=row.webhook_url,
        webhook_secret=row.webhook_secret,
    )


class StreamStore:
    """The rows, on the key store's engine (its schema creates the table)."""

    def __init__(self, engine: sa.Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock

    def create(
        self,
        key_id: str,
        user: str,
        model: str,
        source: str,
        options: dict[str, Any],
        max_fps: float,
        format: str,
        limit: int,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> StreamRow | None:
        """A new stream, or None when the key already has `limit` streams."""
        now = self.clock()
        stream_id = "st_" + secrets.token_hex(8)
        with self.engine.begin() as db:
            held = db.execute(
                sa.select(sa.func.count()).select_from(streams).where(streams.c.key_id == key_id)
            ).scalar_one()
            if held >= limit:
                return None
            db.execute(
                streams.insert().values(
                    id=stream_id,
                    key_id=key_id,
                    user_name=user,
                    model=model,
                    source=source,
                    options=json.dumps(options, sort_keys=True),
                    max_fps=max_fps,
                    format=format,
                    paused=False,
                    status="connecting",
                    error="",
                    created_at=now,
                    updated_at=now,
                    webhook_url=webhook_url,
                    webhook_secret=webhook_secret,
                )
            )
        found = self.get(stream_id)
        assert found is not None
        return found

    def get(self, stream_id: str, key_id: str | None = None) -> StreamRow | None:
        """The stream, or None (also when `key_id` is given and it is another key's)."""
        where = [streams.c.id == stream_id]
        if key_id is not None:
            where.append(streams.c.key_id == key_id)
        with self.engine.connect() as db:
            row = db.execute(sa.select(streams).where(*where)).first()
        return None if row is None else _row(row)

    def all(self, key_id: str | None = None) -> list[StreamRow]:
        """A key's streams (every stream with None), oldest first."""
        query = sa.select(streams).order_by(streams.c.created_at, streams.c.id)
        if key_id is not None:
            query = query.where(streams.c.key_id == key_id)
        with self.engine.connect() as db:
            return [_row(r) for r in db.execute(query)]

    def set_paused(self, stream_id: str, key_id: str, paused: bool) -> StreamRow | None:
        """Pause or resume; a resumed stream starts again from `connecting` (a failed one too)."""
        values: dict[str, Any] = {"paused": paused, "updated_at": self.clock()}
        values.update({"status": "paused"} if paused else {"status": "connecting", "error": ""})
        with self.engine.begin() as db:
            done = db.execute(
                streams.update().where(streams.c.id == stream_id, streams.c.key_id == key_id).values(**values)
            ).rowcount
        return self.get(stream_id) if done else None

    def delete(self, stream_id: str, key_id: str) -> bool:
        with self.engine.begin() as db:
            return bool(
                db.execute(
                    streams.delete().where(streams.c.id == stream_id, streams.c.key_id == key_id)
                ).rowcount
            )

    def set_status(self, stream_id: str, status: str, error: str = "") -> None:
        """What the runner found; a paused stream stays `paused` whatever its runner says last."""
        assert status in STATUSES, status
        with self.engine.begin() as db:
            db.execute(
                streams.update()
                .where(streams.c.id == stream_id, streams.c.paused == sa.false())
                .values(status=status, error=error[:512], updated_at=self.clock())
            )

    def claim(self, owner: str, lease_s: float) -> list[StreamRow]:
        """Renew this process's leases and take every expired or free one; the streams it now holds
        (paused ones included: holding them is what lets a resume start them here)."""
        now = self.clock()
        until = now + timedelta(seconds=lease_s)
        with self.engine.begin() as db:
            db.execute(
                streams.update()
                .where(
                    sa.or_(
                        streams.c.lease_owner == owner,
                        streams.c.lease_owner.is_(None),
                        streams.c.lease_until < now,
                    )
                )
                .values(lease_owner=owner, lease_until=until)
            )
            rows = db.execute(sa.select(streams).where(streams.c.lease_owner == owner)).all()
        return [_row(r) for r in rows]

    def release(self, owner: str) -> None:
        """Give this process's leases back (a clean shutdown: another process may take them at once)."""
        with self.engine.begin() as db:
            db.execute(
                streams.update()
                .where(streams.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
