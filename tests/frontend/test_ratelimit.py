"""Per-key limits over a minute and a day, with the headers clients read."""

from __future__ import annotations

import asyncio

import pytest

from frontend.guards.ratelimit import MemoryCounter, Plan, RateLimiter
from tests.helpers.aio import run as arun

FREE = Plan(10, 100)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0 - 1_700_000_000.0 % 86_400) -> None:
        self.now = now  # midnight UTC

    def __call__(self) -> float:
        return self.now


def test_ten_per_minute_then_429_with_retry_after() -> None:
    clock = Clock()
    clock.now += 15  # 45 s before the minute resets
    limiter = RateLimiter(MemoryCounter(), clock)
    decisions = [arun(limiter.check("k", FREE)) for _ in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    refused = decisions[-1]
    assert refused.retry_after_s == 45
    assert refused.headers()["Retry-After"] == "45"
    assert refused.headers()["X-RateLimit-Remaining"] == "0"
    t = int(refused.headers()["RateLimit"].rsplit(";t=", 1)[1])
    assert refused.headers()["RateLimit"].startswith('"60s";r=0;')
    assert refused.retry_after_s >= t  # waiting as told is always enough


def test_headers_count_down_and_policy_stays_constant() -> None:
    clock = Clock()
    limiter = RateLimiter(MemoryCounter(), clock)

    async def five() -> list[dict[str, str]]:
        out = []
        for _ in range(5):
            out.append((await limiter.check("k", FREE)).headers())
            clock.now += 1
        return out

    headers = arun(five())
    assert [h["X-RateLimit-Remaining"] for h in headers] == ["9", "8", "7", "6", "5"]
    assert {h["RateLimit-Policy"] for h in headers} == {'"60s";q=10;w=60'}
    resets = [int(h["X-RateLimit-Reset"]) for h in headers]
    assert resets == sorted(resets, reverse=True)  # t never increases within the window
    assert headers[0]["RateLimit"] == '"60s";r=9;t=60'


def test_a_free_key_gets_exactly_100_in_a_simulated_day() -> None:
    clock = Clock()
    limiter = RateLimiter(MemoryCounter(), clock)

    async def day() -> int:
        admitted = 0
        for _minute in range(24 * 60):
            for _ in range(12):  # more than the minute allows
                admitted += (await limiter.check("k", FREE)).allowed
            clock.now += 60
        return admitted

    assert arun(day()) == 100


def test_the_day_resets_at_midnight() -> None:
    clock = Clock()
    limiter = RateLimiter(MemoryCounter(), clock)

    async def run() -> tuple[bool, bool]:
        for _ in range(10):  # 100 requests over 10 minutes
            for _ in range(10):
                assert (await limiter.check("k", FREE)).allowed
            clock.now += 60
        refused = (await limiter.check("k", FREE)).allowed
        clock.now += 86_400
        return refused, (await limiter.check("k", FREE)).allowed

    assert arun(run()) == (False, True)


def test_keys_do_not_share_quota() -> None:
    limiter = RateLimiter(MemoryCounter(), Clock())

    async def run() -> bool:
        for _ in range(10):
            await limiter.check("a", FREE)
        assert not (await limiter.check("a", FREE)).allowed
        return (await limiter.check("b", FREE)).allowed

    assert arun(run())


def test_a_refused_minute_spends_no_day_quota() -> None:
    clock = Clock()
    limiter = RateLimiter(MemoryCounter(), clock)

    async def run() -> int:
        for _ in range(50):  # 10 admitted, 40 refused by the minute window
            await limiter.check("k", Plan(10, 20))
        clock.now += 60
        return sum([(await limiter.check("k", Plan(10, 20))).allowed for _ in range(15)])

    assert arun(run()) == 10  # the day still had 10 left: refusals cost nothing


@pytest.mark.parametrize("concurrency", [100])
def test_concurrent_burst_in_one_process_is_exact(concurrency: int) -> None:
    limiter = RateLimiter(MemoryCounter(), Clock())

    async def burst() -> int:
        results = await asyncio.gather(*(limiter.check("k", FREE) for _ in range(concurrency)))
        return sum(d.allowed for d in results)

    assert arun(burst()) == 10


def test_failed_auths_per_ip_401_up_to_the_limit_then_429_until_the_minute_ends() -> None:
    from frontend.errors import RateLimited
    from frontend.guards.ratelimit import FailedAuthLimiter

    clock = Clock()
    clock.now += 20  # 40 s before the minute resets
    failures = FailedAuthLimiter(MemoryCounter(), per_minute=3, clock=clock)

    async def run() -> tuple[int, bool, bool]:
        for _ in range(3):  # at the limit: each is still a plain 401 for the caller
            await failures.failed("10.0.0.1")
        with pytest.raises(RateLimited) as past:
            await failures.failed("10.0.0.1")
        other_ip = await failures.failed("10.0.0.2") is None  # another address has its own count
        clock.now += 40  # the next minute
        next_minute = await failures.failed("10.0.0.1") is None
        return past.value.retry_after or 0, other_ip, next_minute

    assert arun(run()) == (40, True, True)


def test_failed_auth_limit_zero_turns_it_off() -> None:
    from frontend.guards.ratelimit import FailedAuthLimiter

    failures = FailedAuthLimiter(MemoryCounter(), per_minute=0, clock=Clock())

    async def run() -> None:
        for _ in range(1000):
            await failures.failed("10.0.0.1")

    arun(run())
