"""Who may call what, and how often: keys, visibility and plan limits through the real stack."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.aio import run as arun
from tests.helpers.stack import Stack, free_port, in_one_minute, port_outside_ephemeral_range, start_redis
from trident import runtime

pytestmark = pytest.mark.integration
TINY = Path(__file__).parents[1] / "fixtures" / "tiny.png"
SLUG = "test/coco/yolo11n"


def test_private_models_are_visible_to_their_owner_only(stack: Stack, yolo11n_pt: Path, bus: Path) -> None:
    stack.export(yolo11n_pt, "alice/secret/det", visibility="private")
    alice = stack.create_key("alice", "test")
    stack.wait_model("alice/secret/det", key=alice)
    assert stack.predict("alice/secret/det", bus, key=alice).status_code == 200
    bob = stack.create_key("bob", "test")
    hidden = stack.predict("alice/secret/det", bus, key=bob)
    missing = stack.predict("alice/secret/nothing", bus, key=bob)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == missing.json()["error"]["message"] == "Model not found"
    listed = httpx.get(f"{stack.base_url}/api/models", headers={"Authorization": f"Bearer {bob}"}).json()
    assert "alice/secret/det" not in {m["slug"] for m in listed["models"]}
    assert SLUG in {m["slug"] for m in listed["models"]}  # public models are listed for everyone


def test_a_revoked_key_is_refused_at_once_and_like_an_unknown_one(stack: Stack) -> None:
    from store.keys import KeyStore, new_key

    key = stack.create_key("carol", "test")
    assert stack.predict(SLUG, TINY, key=key).status_code == 200
    KeyStore(stack.settings.key_store_url).revoke(key[4:12])
    revoked = stack.predict(SLUG, TINY, key=key)
    unknown = stack.predict(SLUG, TINY, key=new_key()[0])
    assert revoked.status_code == unknown.status_code == 401
    assert revoked.content == unknown.content
    assert revoked.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_every_response_carries_the_limit_state_and_429_says_when(stack: Stack) -> None:
    def attempt(n: int) -> None:
        key = stack.create_key(f"dave-{n}", "free")
        seen = [stack.predict(SLUG, TINY, key=key) for _ in range(11)]
        assert [r.status_code for r in seen] == [200] * 10 + [429]
        first, last = seen[0], seen[-1]
        assert first.headers["X-RateLimit-Limit"] == "10"
        assert first.headers["X-RateLimit-Remaining"] == "9"
        assert first.headers["RateLimit-Policy"] == '"60s";q=10;w=60'
        body = last.json()
        assert body["error"]["message"] == "Rate limited"
        assert int(last.headers["Retry-After"]) >= 1
        assert last.headers["X-RateLimit-Remaining"] == "0"

    in_one_minute(attempt)


def test_failed_auth_spends_no_quota(stack: Stack) -> None:
    key = stack.create_key("erin", "free")
    for _ in range(20):
        bad = key[:-1] + ("A" if key[-1] != "A" else "B")
        assert stack.predict(SLUG, TINY, key=bad).status_code == 401
    assert stack.predict(SLUG, TINY, key=key).headers["X-RateLimit-Remaining"] == "9"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = start_redis(port, tmp_path)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait()


def two_workers(stack: Stack, redis: str | None, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    return stack.spawn_frontend(log, TRIDENT_WORKERS="2", TRIDENT_REDIS_URL=redis or "")


def burst(base: str, key: str, n: int = 100) -> list[httpx.Response]:
    """`n` requests at once, on separate connections (see `in_one_minute`)."""

    async def run() -> list[httpx.Response]:
        async def one() -> httpx.Response:
            async with httpx.AsyncClient(timeout=60) as client:
                return await client.post(
                    f"{base}/api/models/{SLUG}/predict",
                    headers={"Authorization": f"Bearer {key}"},
                    files={"file": ("tiny.png", TINY.read_bytes())},
                )

        return list(await asyncio.gather(*(one() for _ in range(n))))

    return arun(run())


def test_two_workers_sharing_redis_admit_exactly_the_plan(
    stack: Stack, redis_url: str, tmp_path: Path
) -> None:
    process, base = two_workers(stack, redis_url, tmp_path / "redis.log")

    def attempt(n: int) -> None:
        responses = burst(base, stack.create_key(f"frank-{n}", "free"))
        statuses = [r.status_code for r in responses]
        assert (statuses.count(200), statuses.count(429)) == (10, 90), sorted(set(statuses))
        for refused in (r for r in responses if r.status_code == 429):
            assert refused.json()["error"]["message"] == "Rate limited"
            assert int(refused.headers["Retry-After"]) >= 1
            assert ";r=0;t=" in refused.headers["RateLimit"]

    try:
        in_one_minute(attempt)
    finally:
        runtime.stop(process)


def test_negative_control_in_memory_counters_over_admit_across_workers(stack: Stack, tmp_path: Path) -> None:
    """Without Redis each worker counts alone: the same burst gets more than the plan allows."""
    process, base = two_workers(stack, None, tmp_path / "memory.log")

    def attempt(n: int) -> None:
        statuses = [r.status_code for r in burst(base, stack.create_key(f"grace-{n}", "free"))]
        assert statuses.count(200) > 10
        assert statuses.count(200) + statuses.count(429) == 100

    try:
        in_one_minute(attempt)
    finally:
        runtime.stop(process)


def test_redis_down_fails_closed_with_503_then_recovers(stack: Stack, tmp_path: Path) -> None:
    port = port_outside_ephemeral_range()  # the frontend retries it before the server starts
    url = f"redis://127.0.0.1:{port}/0"
    process, base = two_workers(stack, url, tmp_path / "down.log")
    key = stack.create_key("heidi", "free")
    headers = {"Authorization": f"Bearer {key}"}
    try:
        start = time.monotonic()
        r = httpx.post(
            f"{base}/api/models/{SLUG}/predict", headers=headers, files={"file": TINY.read_bytes()}
        )
        assert r.status_code == 503 and time.monotonic() - start < 1.0
        assert r.json()["error"]["message"] == "Service unavailable" and "Retry-After" in r.headers
        server = start_redis(port, tmp_path)
        try:
            deadline = time.monotonic() + 5
            while True:
                r = httpx.post(
                    f"{base}/api/models/{SLUG}/predict", headers=headers, files={"file": TINY.read_bytes()}
                )
                if r.status_code == 200:
                    break
                assert time.monotonic() < deadline, f"limits did not recover: {r.status_code}"
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait()
    finally:
        runtime.stop(process)


def test_raw_keys_never_reach_logs_the_database_or_responses(stack: Stack, tmp_path: Path) -> None:
    key = stack.create_key("ivan", "test")
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    bodies = [stack.predict(SLUG, TINY, key=k) for k in (key, wrong)]
    bodies.append(httpx.get(f"{stack.base_url}/api/models", headers={"Authorization": f"Bearer {key}"}))
    bodies.append(stack.predict("ivan/none/none", TINY, key=key))
    secret = key[12:44]
    for response in bodies:
        assert secret not in response.text and secret not in str(response.headers)
    database = Path(stack.settings.key_store_url.removeprefix("sqlite:///")).read_bytes()
    frontend_log = (stack.log.parent / "frontend.log").read_bytes()
    for blob in (database, frontend_log):
        assert secret.encode() not in blob and wrong[12:44].encode() not in blob
    assert key[4:12].encode() in database  # the public key id is what identifies a key
