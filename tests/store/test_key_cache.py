"""The verified-key cache on SQLite: a cached key costs no query, and every change (revocation,
scopes, a plan, expiry), made in this process or by another one as the CLI makes it, is refused or
applied on the very next check. Entries outlive neither `ttl_s` nor a change that committed while
they were being read, and a file locked by a commit is a miss, never a wait. (PostgreSQL's channel:
`tests/integration/test_replicas_postgres.py`.)"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from store.keycache import KeyCache
from store.keys import KeyStore
from tests.helpers.clock import Clock

TTL_S = 5.0


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}"


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(url: str, ticks: Ticks, clock: Clock) -> Iterator[KeyStore]:
    cached = KeyStore(url, clock, KeyCache(TTL_S, ticks))
    yield cached
    cached.close()


@pytest.fixture
def queries(store: KeyStore) -> Iterator[list[str]]:
    """Every statement `store`'s engine runs."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(store.engine, "before_cursor_execute", record)


def in_another_process(url: str, call: str) -> None:
    """`KeyStore(url).<call>` in a fresh interpreter, as `trident keys ...` runs it."""
    code = f"from store.keys import KeyStore\nKeyStore({url!r}).{call}"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def checked(store: KeyStore, key: str) -> Any:
    """What the API does: the cache first, the store when it has nothing."""
    return store.verify_cached(key) or store.verify(key)


def test_a_verified_key_is_then_answered_without_a_query(store: KeyStore, queries: list[str]) -> None:
    key, key_id = store.create_key("alice", "pro", scopes=["predict", "admin"])
    assert store.verify_cached(key) is None  # never read yet
    first = store.verify(key)
    queries.clear()
    for _ in range(3):
        assert store.verify_cached(key) == first
    assert queries == []
    assert first is not None and (first.key_id, first.user, first.plan) == (key_id, "alice", "pro")
    assert first.scopes == {"predict", "admin"}
    store.flush_last_used()  # a cached use still counts as a use
    assert store.list_keys()[0].last_used_at is not None


@pytest.mark.parametrize("where", ["this process", "another process"])
def test_revocation_is_refused_on_the_very_next_check(store: KeyStore, url: str, where: str) -> None:
    keys = [store.create_key("alice", "free") for _ in range(2)]
    for key, _ in keys:
        assert checked(store, key) is not None
    revoked, key_id = keys[0]
    if where == "this process":
        store.revoke(key_id)
    else:
        in_another_process(url, f"revoke({key_id!r})")
    assert store.verify_cached(revoked) is None
    assert store.verify(revoked) is None
    assert checked(store, keys[1][0]) is not None  # the other key still works


def test_new_scopes_and_plans_from_another_process_apply_on_the_next_check(store: KeyStore, url: str) -> None:
    key, key_id = store.create_key("bob", "free")
    assert checked(store, key).scopes == {"predict"}
    in_another_process(url, f"set_scopes({key_id!r}, ['admin'])")
    assert checked(store, key).scopes == {"admin"}
    in_another_process(url, "add_user('bob', 'pro')")
    assert checked(store, key).plan == "pro"


def test_an_expired_key_is_refused_at_its_moment_even_when_cached(store: KeyStore, clock: Clock) -> None:
    key, _ = store.create_key("carol", "free", expires_in=timedelta(minutes=5))
    assert checked(store, key) is not None
    clock.now += timedelta(minutes=5) - timedelta(microseconds=1)
    assert store.verify_cached(key) is not None
    clock.now += timedelta(microseconds=1)
    assert store.verify_cached(key) is None
    assert store.verify(key) is None


def test_an_entry_is_served_at_most_ttl_after_its_store_read(
    store: KeyStore, ticks: Ticks, queries: list[str]
) -> None:
    key, _ = store.create_key("dave", "free")
    store.verify(key)
    ticks.now += TTL_S
    assert store.verify_cached(key) is not None
    ticks.now += 0.001
    assert store.verify_cached(key) is None
    queries.clear()
    assert checked(store, key) is not None and len(queries) == 1  # read again, then cached again
    assert store.verify_cached(key) is not None


def test_a_forged_secret_on_a_cached_key_id_is_not_a_hit(store: KeyStore) -> None:
    key, _ = store.create_key("erin", "free")
    assert checked(store, key) is not None
    forged = _forge(key)
    assert store.verify_cached(forged) is None
    assert store.verify(forged) is None
    assert store.verify_cached(key) is not None  # the real key's entry is untouched


def _forge(key: str) -> str:
    """The same key id with another secret and a valid checksum."""
    from store.keys import key_checksum

    body = key[:12] + ("a" if key[12] != "a" else "b") + key[13:44]
    return body + key_checksum(body)


def test_a_change_committed_during_the_read_is_not_cached(
    store: KeyStore, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read sees the key active, a revocation commits before the entry would be kept: the
    entry is dropped, so the next check reads the store and refuses."""
    key, key_id = store.create_key("frank", "free")
    other = KeyStore(url)
    lookup = store._lookup

    def read_then_revoke(*args: Any) -> Any:
        row = lookup(*args)
        other.revoke(key_id)  # as the CLI would, between this read and the entry
        return row

    monkeypatch.setattr(store, "_lookup", read_then_revoke)
    assert store.verify(key) is not None  # what it read was active
    monkeypatch.undo()
    assert store.verify_cached(key) is None
    assert store.verify(key) is None
    other.close()


def test_a_file_locked_by_a_commit_is_a_miss_not_a_wait(store: KeyStore, url: str) -> None:
    key, _ = store.create_key("grace", "free")
    assert checked(store, key) is not None
    writer = sqlite3.connect(url.removeprefix("sqlite:///"))
    writer.execute("BEGIN EXCLUSIVE")
    try:
        started = time.perf_counter()
        assert store.verify_cached(key) is None
        assert time.perf_counter() - started < 0.5
    finally:
        writer.rollback()
        writer.close()
    assert checked(store, key) is not None


def test_no_cache_where_no_channel_carries_every_change(tmp_path: Path) -> None:
    in_memory = KeyStore("sqlite://", cache=KeyCache(TTL_S))
    assert in_memory.cache is None
    key, _ = in_memory.create_key("heidi", "free")
    assert in_memory.verify_cached(key) is None and in_memory.verify(key) is not None
