"""Two frontend replicas sharing one PostgreSQL key store, one Triton and one Redis, as the README's
Kubernetes setup runs them: schema creation at the same moment, keys made with the CLI, revocation
and plans seen by both, exact limits across both, and a database outage answered with 503.

The replicas cache verified keys for 60 s (`TRIDENT_KEY_CACHE_S`, far above the default, so that
only the notification channel can explain a change seen in time): revocation, scopes, plans and
expiry still apply on the very next request on both, also after the channel was cut and came
back, and a channel that falls silent stops the cache within its bound.

The cluster is this test's own (`initdb` in a temporary folder, a free port), run as the
`postgres` user when the tests run as root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from store.keycache import CHANNEL_STALE_S, PostgresChannel
from store.keys import KeyStore, hash_key, new_key
from tests.helpers.aio import run as arun
from tests.helpers.postgres import Postgres
from tests.helpers.stack import TEST_PLANS, Stack, free_port, in_one_minute, start_redis
from trident import runtime

pytestmark = pytest.mark.integration
TINY = Path(__file__).parents[1] / "fixtures" / "tiny.png"
SLUG = "test/coco/yolo11n"


def listeners(cluster: Postgres, what: str = "pid") -> list[str]:
    """`what` (`pid`, `pg_terminate_backend(pid)`) of each backend of the replicas' key-cache channels."""
    name = PostgresChannel.APPLICATION_NAME
    return cluster.sql(f"SELECT {what} FROM pg_stat_activity WHERE application_name = '{name}'")  # noqa: S608


def behind_trident(cluster: Postgres, key: str, change: str) -> None:
    """A change to `key` made in the database directly, not through Trident's store (so no
    notification): what a replica then answers shows whether it answered from its cache."""
    cluster.sql(f"UPDATE api_keys SET {change} WHERE key_id = '{key[4:12]}'", "trident")  # noqa: S608


@dataclass
class Replicas:
    env: dict[str, str]
    bases: list[str]
    logs: list[Path]

    def cli(self, *argv: str) -> str:
        """`trident <argv>` against the shared key store; its last line of output."""
        done = subprocess.run(
            [sys.executable, "-m", "trident", *argv], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def predict(self, base: str, key: str) -> httpx.Response:
        return httpx.post(
            f"{base}/api/models/{SLUG}/predict",
            headers={"Authorization": f"Bearer {key}"},
            files={"file": ("tiny.png", TINY.read_bytes())},
            timeout=60,
        )


def wait_ready(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


@pytest.fixture(scope="module")
def replicas(
    stack: Stack, postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    """Two `trident serve` processes started at the same moment against the empty database."""
    folder = tmp_path_factory.mktemp("replicas")
    redis_port = free_port()
    redis = start_redis(redis_port, folder)
    env = {**stack.env, "TRIDENT_DATABASE_URL": postgres.url, "TRIDENT_PLANS": TEST_PLANS}
    env |= {"TRIDENT_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "TRIDENT_WORKERS": "1"}
    env |= {"TRIDENT_KEY_CACHE_S": "60"}
    ports, logs = [free_port(), free_port()], [folder / "a.log", folder / "b.log"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "trident", "serve"],
            env={**env, "TRIDENT_PORT": str(port)},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for port, log in zip(ports, logs, strict=True)
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for process, base, log in zip(processes, bases, logs, strict=True):
            wait_ready(process, base, log)
        yield Replicas(env, bases, logs)
    finally:
        for process in processes:
            runtime.stop(process)
        redis.terminate()
        redis.wait()


def test_replicas_started_together_on_an_empty_database_are_both_ready(replicas: Replicas) -> None:
    for base, log in zip(replicas.bases, replicas.logs, strict=True):
        assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
        text = log.read_text()
        assert "Traceback" not in text and "DuplicateTable" not in text and "UniqueViolation" not in text


def test_cli_keys_revocation_and_plans_reach_both_replicas(replicas: Replicas) -> None:
    key = replicas.cli("keys", "create", "--user", "pg-alice", "--plan", "free")
    assert [replicas.predict(base, key).status_code for base in replicas.bases] == [200, 200]
    limits = {replicas.predict(base, key).headers["X-RateLimit-Limit"] for base in replicas.bases}
    assert limits == {"10"}
    replicas.cli("users", "set-plan", "pg-alice", "pro")
    limits = {replicas.predict(base, key).headers["X-RateLimit-Limit"] for base in replicas.bases}
    assert limits == {"60"}
    replicas.cli("keys", "revoke", key[4:12])
    assert [replicas.predict(base, key).status_code for base in replicas.bases] == [401, 401]


def test_scopes_tokens_and_the_audit_trail_are_shared_by_both_replicas(replicas: Replicas) -> None:
    """A key without `predict` is 403 on both; rescoped by the CLI it predicts on both; a token
    made on one replica works on the other (one secret, in the database) until the key is revoked;
    `trident audit` reads every change back from PostgreSQL, newest first."""
    a, b = replicas.bases
    key = replicas.cli("keys", "create", "--user", "pg-carol", "--scope", "admin", "--expires-in", "1d")
    assert [replicas.predict(base, key).status_code for base in replicas.bases] == [403, 403]
    replicas.cli("keys", "scopes", key[4:12], "--scope", "predict", "--scope", "admin")
    assert [replicas.predict(base, key).status_code for base in replicas.bases] == [200, 200]
    made = httpx.post(f"{a}/api/tokens", headers={"Authorization": f"Bearer {key}"})
    cookie = {"Cookie": f"trident_token={made.cookies['trident_token']}"}
    assert httpx.get(f"{b}/api/models", headers=cookie).status_code == 200
    replicas.cli("keys", "revoke", key[4:12])
    assert httpx.get(f"{b}/api/models", headers=cookie).status_code == 401
    done = subprocess.run(
        [sys.executable, "-m", "trident", "audit", "--user", "pg-carol"],
        env=replicas.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    actions = [line.split()[2] for line in done.stdout.splitlines()]
    assert actions == ["key.revoke", "key.scopes", "key.create", "user.plan"]
    assert key not in done.stdout


def test_an_older_postgres_key_store_gains_the_new_columns(postgres: Postgres) -> None:
    """A database made before scopes and expiry: the store adds the columns, its keys still work."""
    postgres.sql("CREATE DATABASE trident_old OWNER trident")
    url = postgres.url.rsplit("/", 1)[0] + "/trident_old"
    engine = sa.create_engine(url)
    key, key_id = new_key()
    with engine.begin() as db:
        db.execute(
            sa.text(
                "CREATE TABLE users (name VARCHAR(64) PRIMARY KEY, plan VARCHAR(64), created_at TIMESTAMPTZ)"
            )
        )
        db.execute(
            sa.text(
                "CREATE TABLE api_keys (key_id VARCHAR(8) PRIMARY KEY, "
                "user_name VARCHAR(64) REFERENCES users, key_hash VARCHAR(64), "
                "created_at TIMESTAMPTZ, revoked_at TIMESTAMPTZ)"
            )
        )
        db.execute(sa.text("INSERT INTO users VALUES ('old', 'free', now())"))
        db.execute(
            sa.text("INSERT INTO api_keys VALUES (:k, 'old', :h, now(), NULL)"),
            {"k": key_id, "h": hash_key(key)},
        )
    engine.dispose()
    store = KeyStore(url)
    principal = store.verify(key)
    assert principal is not None and principal.scopes == {"predict"}
    assert store.list_keys()[0].expires_at is None
    store.engine.dispose()


def test_a_free_key_gets_exactly_its_plan_across_both_replicas(replicas: Replicas) -> None:
    async def burst(key: str) -> list[httpx.Response]:
        async def one(base: str) -> httpx.Response:
            async with httpx.AsyncClient(timeout=60) as client:
                return await client.post(
                    f"{base}/api/models/{SLUG}/predict",
                    headers={"Authorization": f"Bearer {key}"},
                    files={"file": ("tiny.png", TINY.read_bytes())},
                )

        return list(await asyncio.gather(*(one(replicas.bases[i % 2]) for i in range(100))))

    def attempt(n: int) -> None:
        key = replicas.cli("keys", "create", "--user", f"pg-bob-{n}", "--plan", "free")
        statuses = [r.status_code for r in arun(burst(key))]
        assert (statuses.count(200), statuses.count(429)) == (10, 90), sorted(set(statuses))

    in_one_minute(attempt)


def test_postgres_down_is_503_with_retry_after_then_service_resumes(
    replicas: Replicas, postgres: Postgres
) -> None:
    store = KeyStore(postgres.url)  # in-process: the CLI is covered above
    key, revoked = (store.create_key("pg-carol", "test")[0] for _ in range(2))
    store.revoke(revoked[4:12])
    store.engine.dispose()
    assert [replicas.predict(base, key).status_code for base in replicas.bases] == [200, 200]  # cached
    postgres.stop()
    try:
        for base in replicas.bases:
            for presented in (key, revoked):  # neither accepted nor refused unchecked
                r = replicas.predict(base, presented)
                assert r.status_code == 503, r.text
                assert r.json()["error"]["message"] == "Service unavailable"
                assert int(r.headers["Retry-After"]) >= 1
            ready = httpx.get(f"{base}/readyz")
            assert ready.status_code == 503 and "key store" in ready.json()["error"]["detail"]
    finally:
        postgres.start()
    deadline = time.monotonic() + 20
    for base in replicas.bases:
        while (status := replicas.predict(base, key).status_code) != 200:
            assert status == 503 and time.monotonic() < deadline, status
            time.sleep(0.2)
        assert replicas.predict(base, revoked).status_code == 401
        assert httpx.get(f"{base}/readyz").status_code == 200


def statuses(replicas: Replicas, key: str) -> list[int]:
    return [replicas.predict(base, key).status_code for base in replicas.bases]


def wait_listening(postgres: Postgres, count: int = 2, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(listeners(postgres)) != count:
        assert time.monotonic() < deadline, "the replicas' key-cache channels did not come back"
        time.sleep(0.2)


def test_the_replicas_answer_a_verified_key_from_their_cache(replicas: Replicas, postgres: Postgres) -> None:
    """The control for the tests below: a change made behind Trident's back (no notification) is
    not seen while the key is cached, so what they see in time is the channel's doing."""
    key = replicas.cli("keys", "create", "--user", "pg-cache", "--plan", "free")
    assert statuses(replicas, key) == [200, 200]
    behind_trident(postgres, key, "scopes = 'admin'")
    assert statuses(replicas, key) == [200, 200]
    replicas.cli("keys", "revoke", key[4:12])  # through Trident: notified
    assert statuses(replicas, key) == [401, 401]


def test_a_cached_key_rescoped_or_revoked_by_the_cli_is_refused_on_the_next_request(
    replicas: Replicas,
) -> None:
    key = replicas.cli("keys", "create", "--user", "pg-dan", "--plan", "free")
    assert statuses(replicas, key) == [200, 200]
    replicas.cli("keys", "scopes", key[4:12], "--scope", "admin")
    assert statuses(replicas, key) == [403, 403]
    replicas.cli("keys", "scopes", key[4:12], "--scope", "predict")
    assert statuses(replicas, key) == [200, 200]
    replicas.cli("keys", "revoke", key[4:12])
    assert statuses(replicas, key) == [401, 401]


def test_a_cached_key_is_refused_from_its_expiry_on(replicas: Replicas, postgres: Postgres) -> None:
    store = KeyStore(postgres.url)
    key, _ = store.create_key("pg-eve", "free", expires_in=timedelta(seconds=4))
    expires_at = store.list_keys("pg-eve")[0].expires_at
    store.engine.dispose()
    assert expires_at is not None
    assert statuses(replicas, key) == [200, 200]
    time.sleep(max(0.0, expires_at.timestamp() - time.time()) + 0.05)
    assert statuses(replicas, key) == [401, 401]


def test_a_cut_channel_empties_the_cache_and_a_restored_one_carries_changes_again(
    replicas: Replicas, postgres: Postgres
) -> None:
    """The channel's connection is killed: what was cached is not trusted (a change made while it
    was down, unheard, is seen at once); once it is back, changes reach both replicas again."""
    wait_listening(postgres)
    key = replicas.cli("keys", "create", "--user", "pg-fay", "--plan", "free")
    assert statuses(replicas, key) == [200, 200]
    assert listeners(postgres, "pg_terminate_backend(pid)") == ["t", "t"]
    behind_trident(postgres, key, "revoked_at = now()")
    assert statuses(replicas, key) == [401, 401]
    wait_listening(postgres)
    again = replicas.cli("keys", "create", "--user", "pg-fay", "--plan", "free")
    assert statuses(replicas, again) == [200, 200]
    behind_trident(postgres, again, "scopes = 'admin'")
    assert statuses(replicas, again) == [200, 200]  # cached again
    replicas.cli("keys", "revoke", again[4:12])
    assert statuses(replicas, again) == [401, 401]


def test_a_silent_channel_stops_the_cache_within_its_bound(replicas: Replicas, postgres: Postgres) -> None:
    """The channel's server side stops answering without closing (SIGSTOP: a host gone quiet):
    past `CHANNEL_STALE_S` the replicas no longer answer from the cache, so a revocation that did
    not reach them is seen; the rest of the database still answers."""
    wait_listening(postgres)
    key = replicas.cli("keys", "create", "--user", "pg-gus", "--plan", "free")
    assert statuses(replicas, key) == [200, 200]
    backends = [int(pid) for pid in listeners(postgres)]
    for pid in backends:
        os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        behind_trident(postgres, key, "revoked_at = now()")
        time.sleep(max(0.0, stopped + CHANNEL_STALE_S + 0.2 - time.monotonic()))
        assert statuses(replicas, key) == [401, 401]
    finally:
        for pid in backends:
            os.kill(pid, signal.SIGCONT)
