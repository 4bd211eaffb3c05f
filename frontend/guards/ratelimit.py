"""Per-key rate limits over two fixed windows (a minute and a day), exact under concurrency.

One request is admitted only if *both* windows have room, and then counts in both, atomically:
in memory for a single process, or in one Redis Lua script when several workers or replicas
share the quota. (The `limits` library checks one window per call; checking two separately would
let a request rejected by the day window still spend minute quota.) The clock is injectable so
tests can live through a day.

If Redis cannot be reached the limiter fails closed: the request gets 503 with `Retry-After`
(quota cannot be verified, and an unmetered shared service is worse than a brief refusal).

`FailedAuthLimiter` counts failed authentications per client IP on the same counter (see its
docstring for what it counts and why a valid key is never refused for its IP's failures).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from frontend.errors import RateLimited, ServiceUnavailable
from frontend.metrics import record_rate_limited

MINUTE_S, DAY_S = 60, 86_400
WINDOWS = (MINUTE_S, DAY_S)


@dataclass(frozen=True)
class Plan:
    per_minute: int
    per_day: int

    @property
    def limits(self) -> tuple[int, int]:
        return (self.per_minute, self.per_day)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # of the window that binds (the one with the least room left)
    remaining: int
    reset_s: int  # seconds until that window resets
    window_s: int
    retry_after_s: int  # when refused: until the window that refused resets

    def headers(self) -> dict[str, str]:
        policy = f'"{self.window_s}s";q={self.limit};w={self.window_s}'
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": policy,
            "RateLimit": f'"{self.window_s}s";r={self.remaining};t={self.reset_s}',
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


class Counter(Protocol):
    async def admit(self, key: str, windows: list[tuple[str, int, int]]) -> tuple[bool, list[int]]:
        """Admit if every `(bucket, limit, ttl)` has room; return (admitted, counts after)."""

    async def peek(self, buckets: list[str]) -> list[int]:
        """The current counts, spending nothing (for the usage endpoint)."""


class MemoryCounter:
    """One process: a dict and a lock. Several workers each have their own (so they over-admit)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = asyncio.Lock()

    async def admit(self, key: str, windows: list[tuple[str, int, int]]) -> tuple[bool, list[int]]:
        async with self._lock:
            now = time.monotonic()
            counts = []
            for bucket, _, _ in windows:
                count, expires = self._counts.get(bucket, (0, 0.0))
                counts.append(count if expires > now else 0)
            if any(c >= limit for c, (_, limit, _) in zip(counts, windows, strict=True)):
                return False, counts
            for (bucket, _, ttl), c in zip(windows, counts, strict=True):
                expires = self._counts.get(bucket, (0, now + ttl))[1] if c else now + ttl
                self._counts[bucket] = (c + 1, expires)
            if len(self._counts) > 100_000:  # drop expired buckets now and then
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            return True, [c + 1 for c in counts]

    async def peek(self, buckets: list[str]) -> list[int]:
        now = time.monotonic()
        return [c if expires > now else 0 for c, expires in (self._counts.get(b, (0, 0.0)) for b in buckets)]


_ADMIT_LUA = """
local counts = {}
local full = false
for i, key in ipairs(KEYS) do
  counts[i] = tonumber(redis.call('GET', key) or '0')
  if counts[i] >= tonumber(ARGV[2 * i - 1]) then full = true end
end
if full then return {0, unpack(counts)} end
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
end
return {1, unpack(counts)}
"""


class RedisCounter:
    """Shared by every worker and replica: one atomic Lua script per request."""

    def __init__(self, url: str, timeout_s: float = 0.1) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._script = self._redis.register_script(_ADMIT_LUA)

    async def admit(self, key: str, windows: list[tuple[str, int, int]]) -> tuple[bool, list[int]]:
        import redis.exceptions

        args: list[int] = []
        for _, limit, ttl in windows:
            args += [limit, ttl]
        try:
            reply = await self._script(keys=[b for b, _, _ in windows], args=args)
        except (redis.exceptions.RedisError, OSError):
            raise ServiceUnavailable("the rate-limit store is unreachable; quota cannot be checked") from None
        return bool(reply[0]), [int(c) for c in reply[1:]]

    async def peek(self, buckets: list[str]) -> list[int]:
        import redis.exceptions

        try:
            values = await self._redis.mget(buckets)
        except (redis.exceptions.RedisError, OSError):
            raise ServiceUnavailable("the rate-limit store is unreachable") from None
        return [int(v) if v is not None else 0 for v in values]

    async def close(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    def __init__(self, counter: Counter, clock: Callable[[], float] = time.time) -> None:
        self._counter = counter
        self._clock = clock

    @staticmethod
    def _bucket(key_id: str, size: int, now: float) -> str:
        return f"trident:rl:{key_id}:{size}:{math.floor(now / size)}"

    async def remaining(self, key_id: str, plan: Plan) -> list[tuple[int, int]]:
        """(requests left, seconds until reset) for the minute and the day, spending nothing."""
        now = self._clock()
        counts = await self._counter.peek([self._bucket(key_id, size, now) for size in WINDOWS])
        return [
            (max(0, limit - c), max(1, math.ceil((math.floor(now / size) + 1) * size - now)))
            for c, limit, size in zip(counts, plan.limits, WINDOWS, strict=True)
        ]

    async def check(self, key_id: str, plan: Plan) -> Decision:
        now = self._clock()
        windows = [
            (self._bucket(key_id, size, now), limit, size + 1)
            for size, limit in zip(WINDOWS, plan.limits, strict=True)
        ]
        allowed, counts = await self._counter.admit(key_id, windows)
        resets = [max(1, math.ceil((math.floor(now / s) + 1) * s - now)) for s in WINDOWS]
        remaining = [max(0, limit - c) for c, limit in zip(counts, plan.limits, strict=True)]
        binding = min(range(len(WINDOWS)), key=lambda i: (remaining[i], -resets[i]))
        refused = [i for i, (c, limit) in enumerate(zip(counts, plan.limits, strict=True)) if c >= limit]
        retry = max((resets[i] for i in refused), default=resets[binding]) if not allowed else 0
        return Decision(
            allowed, plan.limits[binding], remaining[binding], resets[binding], WINDOWS[binding], retry
        )


class FailedAuthLimiter:
    """Failed authentications per client IP and minute; past the limit, 429 instead of 401.

    Counted: a well-formed key with a valid checksum that the store refused (unknown, revoked or
    a forged secret), because only those cost a key-store lookup. A missing header or a key with
    a bad checksum is refused for free, before any lookup or Redis call, so it is not counted.
    Only failures are limited: a valid key is looked up and served whatever its IP did, so
    callers behind one NAT or proxy never lock each other out (keys carry 190 random bits, so
    the limit is a back-off signal, not what stops guessing). If the counter store is
    unreachable the caller still gets the 401 it earned: it is refused either way.
    """

    def __init__(self, counter: Counter, per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self._counter = counter
        self._per_minute = per_minute
        self._clock = clock

    async def failed(self, client: str) -> None:
        """Count one failure from `client`; raise `RateLimited` when it is past the limit."""
        if self._per_minute <= 0:
            return
        now = self._clock()
        start = math.floor(now / MINUTE_S)
        bucket = f"trident:authfail:{client}:{MINUTE_S}:{start}"
        try:
            allowed, _ = await self._counter.admit(client, [(bucket, self._per_minute, MINUTE_S + 1)])
        except ServiceUnavailable:
            return
        if not allowed:
            record_rate_limited(reason="auth")
            retry = max(1, math.ceil((start + 1) * MINUTE_S - now))
            raise RateLimited(
                f"too many failed authentications from this address; retry in {retry} s",
                retry_after=retry,
            )
