"""API keys: the format, and the store of users, plans and key hashes (SQLAlchemy Core).

A key looks like `tri_<key id: 8><secret: 32><checksum: 6>` (base62). The checksum (CRC32 of the
rest) lets the frontend refuse garbage before any lookup; the key id is public (it names the key
in `trident keys list` and in logs); only a SHA-256 of the whole key is stored. Keys carry 190
bits of randomness, so a fast hash is enough: there is nothing to brute-force.

The store is SQLite under the data folder by default, or any database SQLAlchemy can reach
(`TRIDENT_DATABASE_URL`), so several replicas can share it: PostgreSQL through the `postgres`
extra (psycopg 3, `postgresql+psycopg://...`). A database that cannot be reached raises
`KeyStoreUnavailable`, never a verdict: a key is neither accepted nor refused unchecked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

PREFIX = "tri_"
ALPHABET = string.digits + string.ascii_letters
KEY_RE = re.compile(rf"{PREFIX}([0-9A-Za-z]{{8}})([0-9A-Za-z]{{32}})([0-9A-Za-z]{{6}})")
# compared against when the key id is unknown, so unknown and revoked keys take the same time
DUMMY_HASH = hashlib.sha256(b"trident-dummy-key").hexdigest()
# held while creating the schema on PostgreSQL, so replicas starting together do not race on DDL
SCHEMA_LOCK_ID = 0x7472696465
CONNECT_TIMEOUT_S = 5  # an unreachable host fails a request fast instead of hanging it


class KeyStoreUnavailable(Exception):
    """The key store cannot be reached: the caller can be neither accepted nor refused."""


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), 6)


def new_key() -> tuple[str, str]:
    """A fresh (key, key_id)."""
    key_id = "".join(secrets.choice(ALPHABET) for _ in range(8))
    secret = "".join(secrets.choice(ALPHABET) for _ in range(32))
    body = f"{PREFIX}{key_id}{secret}"
    return body + _checksum(body), key_id


def parse_key(token: str) -> str | None:
    """The key id of a well-formed key with a valid checksum, else None (no lookup needed)."""
    match = KEY_RE.fullmatch(token)
    if match is None or not hmac.compare_digest(_checksum(token[:-6]), match.group(3)):
        return None
    return match.group(1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("plan", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(8), primary_key=True),
    sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (never the key), its user and plan."""

    key_id: str
    user: str
    plan: str


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    user: str
    plan: str
    created_at: datetime
    revoked_at: datetime | None


class KeyStore:
    def __init__(self, url: str) -> None:
        database = sa.engine.make_url(url).database
        if url.startswith("sqlite") and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}
        self.engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        self._create_schema()

    def _create_schema(self) -> None:
        """Create missing tables. On PostgreSQL a transaction-scoped advisory lock serialises this
        across replicas (its DDL is transactional, so the next holder sees the tables and skips them)."""
        with self.engine.begin() as db:
            if db.dialect.name == "postgresql":
                db.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK_ID})
            metadata.create_all(db, checkfirst=True)

    def reachable(self) -> bool:
        """Whether a query gets through now (for `/readyz`)."""
        try:
            with self.engine.connect() as db:
                db.execute(sa.text("SELECT 1"))
        except (sa.exc.DBAPIError, sa.exc.TimeoutError):
            return False
        return True

    def add_user(self, name: str, plan: str) -> None:
        """Create the user, or change its plan."""
        with self.engine.begin() as db:
            exists = db.execute(sa.select(users.c.name).where(users.c.name == name)).first()
            if exists:
                db.execute(users.update().where(users.c.name == name).values(plan=plan))
            else:
                db.execute(users.insert().values(name=name, plan=plan, created_at=datetime.now(UTC)))

    def create_key(self, user: str, plan: str) -> tuple[str, str]:
        """A new key for `user` (created with `plan` if new); returns (key, key_id). The key is not kept."""
        key, key_id = new_key()
        with self.engine.begin() as db:
            if not db.execute(sa.select(users.c.name).where(users.c.name == user)).first():
                db.execute(users.insert().values(name=user, plan=plan, created_at=datetime.now(UTC)))
            db.execute(
                api_keys.insert().values(
                    key_id=key_id, user_name=user, key_hash=hash_key(key), created_at=datetime.now(UTC)
                )
            )
        return key, key_id

    def revoke(self, key_id: str) -> bool:
        with self.engine.begin() as db:
            result = db.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return bool(result.rowcount)

    def list_keys(self) -> list[KeyInfo]:
        query = (
            sa.select(
                api_keys.c.key_id, users.c.name, users.c.plan, api_keys.c.created_at, api_keys.c.revoked_at
            )
            .join(users)
            .order_by(api_keys.c.created_at)
        )
        with self.engine.connect() as db:
            return [KeyInfo(*row) for row in db.execute(query)]

    def verify(self, token: str) -> Principal | None:
        """The caller behind a presented key, or None. Constant-time, one lookup at most.

        Raises `KeyStoreUnavailable` when the database cannot answer (the caller answers 503)."""
        key_id = parse_key(token)
        if key_id is None:
            return None
        query = (
            sa.select(api_keys.c.key_hash, api_keys.c.revoked_at, users.c.name, users.c.plan)
            .join(users)
            .where(api_keys.c.key_id == key_id)
        )
        try:
            with self.engine.connect() as db:
                row = db.execute(query).first()
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from exc
        stored = row.key_hash if row is not None else DUMMY_HASH
        matches = hmac.compare_digest(stored, hash_key(token))
        if row is None or not matches or row.revoked_at is not None:
            return None
        return Principal(key_id=key_id, user=row.name, plan=row.plan)
