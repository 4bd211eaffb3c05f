"""Verified keys held in the process for a few seconds, so that a predict call need not read the
key store (a database read and a trip to a worker thread per request).

A cached key is only as good as the news of its changes, so the cache is used only where every
change reaches it before the next request can read it, whoever made the change:

- PostgreSQL: the store's own writes (revoke, scopes, a user's plan) `NOTIFY` the channel
  `trident_keys` inside their transaction, so PostgreSQL delivers the news on commit to every
  process that listens (every replica and worker), whether the CLI, an API call on another
  replica or this one wrote it. Each process keeps one `LISTEN` connection on a thread
  (`PostgresChannel`); while it is not connected, or has not heard from the server within
  `CHANNEL_STALE_S`, the cache is empty and unused, and it starts empty again once reconnected
  (news sent while it was away is lost, so nothing read before is trusted).
- SQLite (one box): `PRAGMA data_version` on a connection of the cache's own changes whenever any
  other connection, of any process (the CLI), commits to the file. It is read before every hit
  (about 10 microseconds, no table read); any change empties the cache. A file locked by a commit
  in progress is a miss.
- any other database: no cache (it has no channel that every writer uses).

Only active keys are cached, with their hash: a presented key must still hash to the stored hash,
and an expired one is refused by the clock at once. Every entry is also served at most `ttl_s`
after it was read from the store (`TRIDENT_KEY_CACHE_S`): the bound on how long a key outlives a
store that stops answering without the channel noticing. Unknown, revoked and forged keys are
never cached: they always go to the store, as before, and count as failures there.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa

log = logging.getLogger("trident.keys")

CHANNEL = "trident_keys"
ALL = "*"  # a notification's payload for "every key" (a user's plan changed)
HEARTBEAT_S = 1.0  # the listener asks the server something this often
CHANNEL_STALE_S = 3.0  # a listener not heard back from for this long counts as lost
RECONNECT_S = 0.5


@dataclass(frozen=True)
class CachedKey:
    key_hash: str
    user: str
    plan: str
    scopes: frozenset[str]
    expires_at: datetime | None
    read_at: float  # monotonic time of the store read it came from


class Freshness(Protocol):
    """Whether the cache may be used now (and what it must forget first)."""

    def check(self, cache: KeyCache) -> bool: ...

    def close(self) -> None: ...


class KeyCache:
    """Active keys by key id. `begin()` before a store read and `put()` after it: an entry is only
    kept when nothing was invalidated in between (a change that committed during the read)."""

    def __init__(self, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.monotonic = monotonic
        self.freshness: Freshness | None = None  # set by the store; None: never usable
        self._entries: dict[str, CachedKey] = {}
        self._generation = 0  # bumped by every invalidation
        self._lock = threading.Lock()

    def usable(self) -> bool:
        return self.freshness is not None and self.freshness.check(self)

    def get(self, key_id: str) -> CachedKey | None:
        if not self.usable():
            return None
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is not None and self.monotonic() - entry.read_at > self.ttl_s:
                del self._entries[key_id]
                return None
        return entry

    def begin(self) -> int | None:
        """The generation a store read starts in, or None when the cache cannot be used now."""
        if not self.usable():
            return None
        with self._lock:
            return self._generation

    def put(self, generation: int | None, key_id: str, entry: CachedKey) -> None:
        if generation is None or not self.usable():
            return
        with self._lock:
            if generation == self._generation:
                self._entries[key_id] = entry

    def invalidate(self, key_id: str = ALL) -> None:
        with self._lock:
            self._generation += 1
            if key_id == ALL:
                self._entries.clear()
            else:
                self._entries.pop(key_id, None)

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        if self.freshness is not None:
            self.freshness.close()
        self.invalidate()


class SQLiteVersion:
    """Fresh while `PRAGMA data_version` of the cache's own connection is unchanged."""

    def __init__(self, database: str) -> None:
        # timeout 0: a file locked by a commit is a miss at once, never a wait on the event loop
        self._db = sqlite3.connect(database, timeout=0, check_same_thread=False, isolation_level=None)
        self._version: int | None = None
        self._lock = threading.Lock()

    def check(self, cache: KeyCache) -> bool:
        with self._lock:
            try:
                version = self._db.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                cache.invalidate()
                self._version = None
                return False
            if version != self._version:
                cache.invalidate()  # something committed: forget everything read before
                self._version = version
        return True

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresChannel:
    """A thread holding `LISTEN trident_keys`: each notification invalidates its key (or all);
    losing the connection, or hearing nothing back for `CHANNEL_STALE_S`, empties the cache
    until it is listening again."""

    APPLICATION_NAME = "trident-key-cache"

    def __init__(self, url: str, cache: KeyCache, connect_timeout_s: int) -> None:
        sa_url = sa.engine.make_url(url).set(drivername="postgresql")
        self._conninfo = sa_url.render_as_string(hide_password=False)
        self._connect_timeout_s = connect_timeout_s
        self._cache = cache
        self._alive_at: float | None = None  # monotonic time the server last answered; None: down
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trident-key-channel", daemon=True)
        self._thread.start()

    def check(self, cache: KeyCache) -> bool:
        alive_at = self._alive_at
        if alive_at is not None and cache.monotonic() - alive_at <= CHANNEL_STALE_S:
            return True
        if len(cache):  # silent or lost: what it held is not trusted again, even if it comes back
            cache.invalidate()
        return False

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=self._connect_timeout_s,
                    application_name=self.APPLICATION_NAME,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._cache.invalidate()  # news sent while away is lost: start empty
                    self._alive_at = self._cache.monotonic()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=HEARTBEAT_S):
                            self._cache.invalidate(note.payload or ALL)
                        conn.execute("SELECT 1")  # a server that went away fails here
                        self._alive_at = self._cache.monotonic()
            except psycopg.Error as exc:
                log.warning(
                    "key cache channel lost (%s); the cache is off until it is back", type(exc).__name__
                )
            finally:
                self._alive_at = None
                self._cache.invalidate()
            self._stop.wait(RECONNECT_S)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout=HEARTBEAT_S + 1)


def notify(db: sa.Connection, key_id: str = ALL) -> None:
    """Tell every listening process, on commit of `db`'s transaction, that `key_id` (or every key)
    changed. PostgreSQL only; elsewhere the cache learns another way (or does not exist)."""
    if db.dialect.name == "postgresql":
        db.execute(sa.select(sa.func.pg_notify(CHANNEL, key_id)))


def freshness_for(url: str, cache: KeyCache, connect_timeout_s: int) -> Freshness | None:
    """How this store's cache learns of changes, or None where it cannot (then no cache)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
        return PostgresChannel(url, cache, connect_timeout_s)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return SQLiteVersion(parsed.database)
    return None
