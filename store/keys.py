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
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from store import audit
from store.audit import SYSTEM, Actor
from store.clock import Clock, utc, utc_now
from store.keycache import ALL, CachedKey, KeyCache, freshness_for, notify
from store.schema import TOKEN_SECRET, api_keys, create_schema, server_secrets, users

PREFIX = "tri_"
ALPHABET = string.digits + string.ascii_letters
KEY_RE = re.compile(rf"{PREFIX}([0-9A-Za-z]{{8}})([0-9A-Za-z]{{32}})([0-9A-Za-z]{{6}})")
# compared against when the key id is unknown, so unknown and revoked keys take the same time
DUMMY_HASH = hashlib.sha256(b"trident-dummy-key").hexdigest()
CONNECT_TIMEOUT_S = 5  # an unreachable host fails a request fast instead of hanging it


class KeyStoreUnavailable(Exception):
    """The key store cannot be reached: the caller can be neither accepted nor refused."""


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(ALPHABET[digit])
    return "".join(reversed(out))


def key_checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), 6)


def new_key() -> tuple[str, str]:
    """A fresh (key, key_id)."""
    key_id = "".join(secrets.choice(ALPHABET) for _ in range(8))
    secret = "".join(secrets.choice(ALPHABET) for _ in range(32))
    body = f"{PREFIX}{key_id}{secret}"
    return body + key_checksum(body), key_id


def parse_key(token: str) -> str | None:
    """The key id of a well-formed key with a valid checksum, else None (no lookup needed)."""
    match = KEY_RE.fullmatch(token)
    if match is None or not hmac.compare_digest(key_checksum(token[:-6]), match.group(3)):
        return None
    return match.group(1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


SCOPES = ("predict", "deployments", "admin", "streams", "export")
DEFAULT_SCOPES = frozenset({"predict"})
LAST_USE_FLUSH_S = 60  # last use reaches the database at most this often per key (per process)


def parse_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes named, refusing unknown ones (a typo must not silently grant nothing)."""
    chosen = frozenset(s.strip() for s in scopes if s.strip())
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; scopes: {', '.join(SCOPES)}")
    return chosen or DEFAULT_SCOPES


def _scopes_text(scopes: frozenset[str]) -> str:
    return ",".join(s for s in SCOPES if s in scopes)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (never the key), its user, plan and scopes."""

    key_id: str
    user: str
    plan: str
    scopes: frozenset[str] = DEFAULT_SCOPES
    anonymous: bool = False  # no key: a public model under `TRIDENT_ANONYMOUS_PLAN`, limited per IP
    via_token: bool = False  # a browser token stands for the key (`predict`, and watching streams, at most)


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    user: str
    plan: str
    created_at: datetime
    revoked_at: datetime | None
    name: str = ""
    scopes: frozenset[str] = DEFAULT_SCOPES
    expires_at: datetime | None = None
    last_used_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


_KEY_COLUMNS = (
    api_keys.c.key_id,
    users.c.name.label("user"),
    users.c.plan,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
    api_keys.c.name,
    api_keys.c.scopes,
    api_keys.c.expires_at,
    api_keys.c.last_used_at,
)


def _key_info(row: Any) -> KeyInfo:
    return KeyInfo(
        key_id=row.key_id,
        user=row.user,
        plan=row.plan,
        created_at=utc(row.created_at),
        revoked_at=utc(row.revoked_at),
        name=row.name,
        scopes=frozenset(row.scopes.split(",")) & set(SCOPES),
        expires_at=utc(row.expires_at),
        last_used_at=utc(row.last_used_at),
    )


class KeyStore:
    def __init__(self, url: str, clock: Clock = utc_now, cache: KeyCache | None = None) -> None:
        """`cache`: verified keys kept in this process (`store.keycache`; the API passes one, the
        CLI does not); dropped where the database offers no way to hear of every change."""
        database = sa.engine.make_url(url).database
        if url.startswith("sqlite") and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}
        self.engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        self.clock = clock
        self._used: dict[str, datetime] = {}  # key id -> last use not yet written
        self._used_lock = threading.Lock()
        create_schema(self.engine)
        self.cache = cache
        if cache is not None:
            cache.freshness = freshness_for(url, cache, CONNECT_TIMEOUT_S)
            if cache.freshness is None:
                self.cache = None

    def close(self) -> None:
        """Stop the cache's channel and close the database's connections."""
        if self.cache is not None:
            self.cache.close()
        self.engine.dispose()

    def _changed(self, key_id: str = ALL) -> None:
        """After a committed change: this process forgets it at once (others hear of it through
        the `notify` in the change's transaction, or the SQLite file's version)."""
        if self.cache is not None:
            self.cache.invalidate(key_id)

    def reachable(self) -> bool:
        """Whether a query gets through now (for `/readyz`)."""
        try:
            with self.engine.connect() as db:
                db.execute(sa.text("SELECT 1"))
        except (sa.exc.DBAPIError, sa.exc.TimeoutError):
            return False
        return True

    def _ensure_user(self, db: sa.Connection, name: str, plan: str, actor: Actor) -> None:
        now = self.clock()
        current = db.execute(sa.select(users.c.plan).where(users.c.name == name)).scalar()
        if current is None:
            db.execute(users.insert().values(name=name, plan=plan, created_at=now))
            audit.record(db, now, actor, "user.plan", name, detail=f"new user, plan {plan}")

    def add_user(self, name: str, plan: str, actor: Actor = SYSTEM) -> None:
        """Create the user, or change its plan (audited either way)."""
        now = self.clock()
        with self.engine.begin() as db:
            current = db.execute(sa.select(users.c.plan).where(users.c.name == name)).scalar()
            if current is None:
                self._ensure_user(db, name, plan, actor)
            elif current != plan:
                db.execute(users.update().where(users.c.name == name).values(plan=plan))
                audit.record(db, now, actor, "user.plan", name, detail=f"plan {current} -> {plan}")
                notify(db)
        self._changed()

    def create_key(
        self,
        user: str,
        plan: str,
        *,
        name: str = "",
        scopes: Iterable[str] = DEFAULT_SCOPES,
        expires_in: timedelta | None = None,
        actor: Actor = SYSTEM,
    ) -> tuple[str, str]:
        """A new key for `user` (created with `plan` if new); returns (key, key_id). The key is not kept."""
        chosen = parse_scopes(scopes)
        key, key_id = new_key()
        now = self.clock()
        expires_at = now + expires_in if expires_in is not None else None
        with self.engine.begin() as db:
            self._ensure_user(db, user, plan, actor)
            db.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    user_name=user,
                    key_hash=hash_key(key),
                    created_at=now,
                    name=name[:64],
                    scopes=_scopes_text(chosen),
                    expires_at=expires_at,
                )
            )
            expiry = f", expires {expires_at:%Y-%m-%dT%H:%MZ}" if expires_at else ""
            audit.record(db, now, actor, "key.create", user, key_id, f"scopes {_scopes_text(chosen)}{expiry}")
        return key, key_id

    def revoke(self, key_id: str, actor: Actor = SYSTEM, user: str | None = None) -> bool:
        """Revoke an active key (only `user`'s when given); False when there is none to revoke."""
        now = self.clock()
        where = [api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None)]
        if user is not None:
            where.append(api_keys.c.user_name == user)
        with self.engine.begin() as db:
            owner = db.execute(sa.select(api_keys.c.user_name).where(*where)).scalar()
            if owner is None:
                return False
            db.execute(api_keys.update().where(*where).values(revoked_at=now))
            audit.record(db, now, actor, "key.revoke", owner, key_id)
            notify(db, key_id)
        self._changed(key_id)
        return True

    def set_scopes(self, key_id: str, scopes: Iterable[str], actor: Actor = SYSTEM) -> bool:
        chosen = parse_scopes(scopes)
        now = self.clock()
        where = (api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        with self.engine.begin() as db:
            row = db.execute(sa.select(api_keys.c.user_name, api_keys.c.scopes).where(*where)).first()
            if row is None:
                return False
            db.execute(api_keys.update().where(*where).values(scopes=_scopes_text(chosen)))
            detail = f"scopes {row.scopes} -> {_scopes_text(chosen)}"
            audit.record(db, now, actor, "key.scopes", row.user_name, key_id, detail)
            notify(db, key_id)
        self._changed(key_id)
        return True

    def list_keys(self, user: str | None = None) -> list[KeyInfo]:
        query = sa.select(*_KEY_COLUMNS).join(users).order_by(api_keys.c.created_at)
        if user is not None:
            query = query.where(api_keys.c.user_name == user)
        with self.engine.connect() as db:
            return [_key_info(row) for row in db.execute(query)]

    def verify(self, token: str) -> Principal | None:
        """The caller behind a presented key, or None. Constant-time, one lookup at most; an
        expired key is refused exactly like an unknown one. The use is noted in memory
        (`flush_last_used` writes it).

        Raises `KeyStoreUnavailable` when the database cannot answer (the caller answers 503)."""
        key_id = parse_key(token)
        if key_id is None:
            return None
        generation = self.cache.begin() if self.cache is not None else None
        row = self._lookup(key_id, api_keys.c.key_hash)
        stored = row.key_hash if row is not None else DUMMY_HASH
        matches = hmac.compare_digest(stored, hash_key(token))
        if row is None or not matches:
            return None
        principal = self._active(row)
        if principal is not None and self.cache is not None:
            entry = CachedKey(
                row.key_hash, principal.user, principal.plan, principal.scopes, utc(row.expires_at),
                self.cache.monotonic(),
            )  # fmt: skip
            self.cache.put(generation, key_id, entry)
        return principal

    def verify_cached(self, token: str) -> Principal | None:
        """`verify` from the cache alone: the caller when the key is cached, matches its hash and
        has not expired; None means "ask `verify`" (never a refusal: refusals are the store's)."""
        key_id = parse_key(token) if self.cache is not None else None
        if self.cache is None or key_id is None or (entry := self.cache.get(key_id)) is None:
            return None
        if not hmac.compare_digest(entry.key_hash, hash_key(token)):
            return None
        if not self._use(key_id, entry.expires_at):
            self.cache.invalidate(key_id)
            return None
        return Principal(key_id=key_id, user=entry.user, plan=entry.plan, scopes=entry.scopes)

    def principal(self, key_id: str) -> Principal | None:
        """The key's caller if it is still active (not revoked, not expired): browser tokens
        check this on every use, so revoking the key ends its tokens at once."""
        row = self._lookup(key_id)
        return self._active(row) if row is not None else None

    def _lookup(self, key_id: str, *extra: sa.ColumnElement[Any]) -> Any:
        query = (
            sa.select(
                *extra,
                api_keys.c.key_id,
                api_keys.c.revoked_at,
                api_keys.c.expires_at,
                api_keys.c.scopes,
                users.c.name,
                users.c.plan,
            )
            .join(users)
            .where(api_keys.c.key_id == key_id)
        )
        try:
            with self.engine.connect() as db:
                return db.execute(query).first()
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from exc

    def _use(self, key_id: str, expires_at: datetime | None) -> bool:
        """Whether a key not revoked is still unexpired now; if so, its use is noted for the
        next `flush_last_used`."""
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            return False
        with self._used_lock:
            self._used[key_id] = now
        return True

    def _active(self, row: Any) -> Principal | None:
        if row.revoked_at is not None or not self._use(row.key_id, utc(row.expires_at)):
            return None
        scopes = frozenset(row.scopes.split(",")) & set(SCOPES)
        return Principal(key_id=row.key_id, user=row.name, plan=row.plan, scopes=scopes)

    def flush_last_used(self) -> int:
        """Write the last use of every key used since the previous flush, in one statement; the
        app calls this every `LAST_USE_FLUSH_S` and at shutdown. Returns how many keys."""
        with self._used_lock:
            pending, self._used = self._used, {}
        if not pending:
            return 0
        update = (
            api_keys.update()
            .where(api_keys.c.key_id == sa.bindparam("k"))
            .values(last_used_at=sa.bindparam("t"))
        )
        try:
            with self.engine.begin() as db:
                db.execute(update, [{"k": k, "t": t} for k, t in pending.items()])
        except (sa.exc.DBAPIError, sa.exc.TimeoutError):
            with self._used_lock:  # keep them for the next try, unless a newer use came in
                self._used = {**pending, **self._used}
            return 0
        return len(pending)

    def token_secret(self) -> bytes:
        """The server's token-signing secret (generated once, stored in the database)."""
        with self.engine.connect() as db:
            value = db.execute(
                sa.select(server_secrets.c.value).where(server_secrets.c.name == TOKEN_SECRET)
            ).scalar_one()
        return bytes.fromhex(value)
