"""API keys: checksummed, stored only as a hash, revocable; unknown and revoked look the same."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from store.keys import KeyStore, KeyStoreUnavailable, new_key, parse_key


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")


def test_new_keys_are_prefixed_checksummed_and_unique() -> None:
    keys = {new_key()[0] for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("tri_") and len(key) == 50
        assert parse_key(key) == key[4:12]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # checksum
        lambda k: k[:20] + ("x" if k[20] != "x" else "y") + k[21:],  # body
        lambda k: k[:-2],
        lambda k: "tri-" + k[4:],
        lambda k: k + "0",
        lambda k: "",
    ],
)
def test_garbage_fails_the_checksum_before_any_lookup(mangle: object) -> None:
    key, _ = new_key()
    assert parse_key(mangle(key)) is None  # type: ignore[operator]


def test_a_created_key_verifies_to_its_user_and_plan(store: KeyStore) -> None:
    key, key_id = store.create_key("alice", "pro")
    principal = store.verify(key)
    assert principal is not None
    assert (principal.key_id, principal.user, principal.plan) == (key_id, "alice", "pro")


def test_only_a_hash_is_stored(store: KeyStore) -> None:
    key, key_id = store.create_key("alice", "free")
    with store.engine.connect() as db:
        rows = [
            tuple(map(str, r))
            for t in ("users", "api_keys")
            for r in db.execute(sa.text(f"select * from {t}"))  # noqa: S608
        ]
    dump = repr(rows)
    assert key not in dump and key[12:44] not in dump  # neither the key nor its secret part
    assert key_id in dump


def test_revoked_and_unknown_keys_are_refused_alike(store: KeyStore) -> None:
    key, key_id = store.create_key("alice", "free")
    assert store.revoke(key_id) is True
    assert store.verify(key) is None
    unknown, _ = new_key()
    assert store.verify(unknown) is None
    assert store.revoke(key_id) is False  # already revoked


def test_a_key_with_a_forged_secret_is_refused(store: KeyStore) -> None:
    """Same key id, valid checksum, other secret: the hash comparison refuses it."""
    from store.keys import key_checksum

    key, _ = store.create_key("alice", "free")
    body = key[:12] + "0" * 32
    assert store.verify(body + key_checksum(body)) is None


def test_plans_change_per_user(store: KeyStore) -> None:
    key, _ = store.create_key("bob", "free")
    store.add_user("bob", "pro")
    principal = store.verify(key)
    assert principal is not None and principal.plan == "pro"


def test_the_verifier_compares_hashes_with_compare_digest(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constant-time comparison, observed: the stored hash meets the presented one in compare_digest."""
    import hmac

    from store import keys

    calls: list[tuple[str, str]] = []
    compare = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return compare(a, b)

    key, _ = store.create_key("alice", "free")
    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    assert store.verify(key) is not None
    assert (keys.hash_key(key), keys.hash_key(key)) in calls


def test_revoked_and_unknown_keys_take_the_same_time(store: KeyStore) -> None:
    """Unknown ids are compared against a dummy hash, so timing cannot tell them from revoked ones
    (n=200 each, interleaved so machine noise hits both alike)."""
    import statistics
    import time

    revoked, key_id = store.create_key("alice", "free")
    store.revoke(key_id)
    unknown = [new_key()[0] for _ in range(200)]
    times: dict[str, list[float]] = {"revoked": [], "unknown": []}
    for other in unknown:
        for name, token in (("revoked", revoked), ("unknown", other)):
            start = time.perf_counter()
            assert store.verify(token) is None
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    assert abs(medians["revoked"] - medians["unknown"]) < 0.25 * max(medians.values()) + 50e-6, medians


def test_an_unreachable_database_is_neither_accepted_nor_refused(store: KeyStore, tmp_path: Path) -> None:
    """A lookup that cannot run raises, so the frontend answers 503 instead of a verdict."""
    key, _ = store.create_key("alice", "free")
    store.engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'keys.db'}")  # cannot be opened
    assert not store.reachable()
    with pytest.raises(KeyStoreUnavailable):
        store.verify(key)


def test_an_unreachable_postgres_fails_fast_at_start() -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens
    with pytest.raises(sa.exc.OperationalError):
        KeyStore(f"postgresql+psycopg://trident:x@127.0.0.1:{port}/trident")
