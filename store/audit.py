"""The audit trail: who changed which key or plan, when, and from where (never a secret).

Entries are written in the same transaction as the change they describe, so a change is never
recorded without happening or the other way round. Actions: `key.create`, `key.revoke`,
`key.scopes`, `user.plan`, and `deployment.*` (`store.deployments.Change`).
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from store.clock import utc
from store.schema import audit_log


@dataclass(frozen=True)
class Actor:
    """Who makes a change and from where."""

    who: str
    source: str

    @classmethod
    def cli(cls) -> Actor:
        return cls(f"cli:{getpass.getuser()}", f"cli@{socket.gethostname()}")

    @classmethod
    def key(cls, key_id: str, client: str) -> Actor:
        return cls(f"key:{key_id}", client)


SYSTEM = Actor("system", "trident")


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    source: str
    action: str
    user: str
    key_id: str | None
    detail: str


def record(
    db: sa.Connection,
    at: datetime,
    actor: Actor,
    action: str,
    user: str,
    key_id: str | None = None,
    detail: str = "",
) -> None:
    db.execute(
        audit_log.insert().values(
            at=at,
            actor=actor.who[:128],
            source=actor.source[:128],
            action=action,
            user_name=user,
            key_id=key_id,
            detail=detail[:256],
        )
    )


def entries(
    engine: sa.Engine, user: str | None = None, action: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Newest first; `action` matches exactly or as a prefix ending in '.' (`key.` for every key action)."""
    query = sa.select(
        audit_log.c.at,
        audit_log.c.actor,
        audit_log.c.source,
        audit_log.c.action,
        audit_log.c.user_name,
        audit_log.c.key_id,
        audit_log.c.detail,
    ).order_by(audit_log.c.id.desc())
    if user is not None:
        query = query.where(audit_log.c.user_name == user)
    if action is not None:
        query = query.where(
            audit_log.c.action.startswith(action) if action.endswith(".") else audit_log.c.action == action
        )
    with engine.connect() as db:
        rows = db.execute(query.limit(limit)).all()
    return [AuditEntry(utc(r[0]), *r[1:]) for r in rows]
