"""What scopes, expiry and last use add to a request's key check, next to the check before them.

`before` is the key check as it was before scopes (the same query, hash and compare, copied here);
`now` is `KeyStore.verify` (expiry, scopes, last use noted in memory) plus the route's scope check,
with the last-use flush charged to the requests it covers (one flush per `--flush-every` checks,
far more often than the app's once a minute). `token` is the Test tab's path: the signature, then
the key's status. All three run interleaved on one SQLite key store (the default) so the machine's
state is shared. The target: `now` within 0.2 ms of `before`.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/key_check.py [--rounds 3000]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import tokens
from store.keys import DUMMY_HASH, KeyStore, Principal, hash_key, parse_key
from store.schema import api_keys, users

TARGET_MS = 0.2


def before(store: KeyStore, token: str) -> Principal | None:
    """The key check before scopes and expiry (its query and comparisons, unchanged)."""
    key_id = parse_key(token)
    if key_id is None:
        return None
    query = (
        sa.select(api_keys.c.key_hash, api_keys.c.revoked_at, users.c.name, users.c.plan)
        .join(users)
        .where(api_keys.c.key_id == key_id)
    )
    with store.engine.connect() as db:
        row = db.execute(query).first()
    stored = row.key_hash if row is not None else DUMMY_HASH
    matches = hmac.compare_digest(stored, hash_key(token))
    if row is None or not matches or row.revoked_at is not None:
        return None
    return Principal(key_id=key_id, user=row.name, plan=row.plan)


def measure(rounds: int, flush_every: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="trident-keybench-"))
    store = KeyStore(f"sqlite:///{folder / 'keys.db'}")
    for i in range(200):  # a store with other users' keys in it
        store.create_key(f"user{i}", "free")
    key, key_id = store.create_key("bench", "free")
    secret = store.token_secret()
    token = tokens.issue(secret, tokens.TokenClaims(key_id, "bench", int(time.time()) + 900))
    calls = {"now": 0}

    def now() -> None:
        principal = store.verify(key)
        assert principal is not None and "predict" in principal.scopes
        calls["now"] += 1
        if calls["now"] % flush_every == 0:
            store.flush_last_used()

    def via_token() -> None:
        claims = tokens.read(secret, token, time.time())
        assert claims is not None and store.principal(claims.key_id) is not None

    runs: dict[str, Callable[[], object]] = {
        "before": lambda: before(store, key),
        "now": now,
        "token": via_token,
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(200):  # warm up
        for run in runs.values():
            run()
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
    store.engine.dispose()
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--flush-every", type=int, default=100)
    args = parser.parse_args()
    medians = measure(args.rounds, args.flush_every)
    for name, ms in medians.items():
        print(f"{name:>7}: {ms:.4f} ms (median of {args.rounds})")
    added = medians["now"] - medians["before"]
    verdict = "within" if added <= TARGET_MS else "OVER"
    print(f"scopes + expiry + last use add {added:+.4f} ms: {verdict} the {TARGET_MS} ms target")
    print(f"the token path costs {medians['token'] - medians['before']:+.4f} ms next to a key")
    print(f"(sha256 of a key: {_sha_cost():.4f} ms)")


def _sha_cost() -> float:
    start = time.perf_counter()
    for _ in range(10_000):
        hashlib.sha256(b"tri_" + b"x" * 46).hexdigest()
    return (time.perf_counter() - start) / 10


if __name__ == "__main__":
    main()
