"""Track sessions: a tracker's state kept between the requests that send one stream's frames.

A session is named by its caller (`track_session=<id>`) inside the caller's namespace (its key id),
bound at its first frame to a model and tracker options, and numbered frame by frame. Its state
is opaque bytes here (the tracker's arrays, `postprocess.trackers.state`). A session ends when it
is unused for `idle_s`, when its key starts one more than `per_key` (the least recently used one
goes), or when deleted. An id ended by the first two answers `Gone` (which end, and the limit)
for `tombstone_s` afterwards, then is free again; a deleted id is free at once.

`turn` holds a session for one frame: frames of one session are processed one at a time, in
arrival order within a process (an `asyncio.Lock` is first come, first served). Two stores, one
interface: `MemoryTrackSessions` (one process) and `RedisTrackSessions` (every replica reaches
the same sessions; a lock key per session, an LRU sorted set per key, TTLs on everything).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from store.clock import Clock, utc_now

if TYPE_CHECKING:
    import redis.asyncio

Ending = Literal["idle", "evicted"]
TOMBSTONE_MIN_S = 600.0  # an ended id answers 410 for at least 10 minutes (and 10 idle periods)
LOCK_LEASE_S = 60.0  # a Redis lock a dead replica left is taken over after this
LOCK_POLL_S = 0.005


@dataclass(frozen=True)
class Binding:
    """What a session was started with; a frame asking for anything else is refused."""

    model: str
    tracker: str
    options: str  # the other options that change the ids, as `name=value` pairs

    def describe(self) -> str:
        return f"model {self.model}, tracker {self.tracker}, {self.options}"


@dataclass(frozen=True)
class SessionInfo:
    id: str
    model: str
    tracker: str
    frames: int
    created: datetime
    last_used: datetime
    idle_left_s: float


class SessionGone(Exception):
    """The id named a session that the idle timeout or the per-key bound ended."""

    def __init__(self, session_id: str, ending: Ending, idle_s: float, per_key: int) -> None:
        why = (
            f"it was unused for {idle_s:g} s (track_session_idle_s)"
            if ending == "idle"
            else f"its key started more than {per_key} sessions (track_sessions_per_key) and it was "
            "the least recently used"
        )
        super().__init__(f"track session {session_id!r} has ended: {why}; start a new one")
        self.ending = ending


class SessionMismatch(Exception):
    """A frame asked a session for another model or other options than it started with."""

    def __init__(self, session_id: str, started: Binding, asked: Binding) -> None:
        super().__init__(
            f"track session {session_id!r} was started with {started.describe()}; this frame asks for "
            f"{asked.describe()} (end the session or use another id)"
        )


class StoreUnavailable(Exception):
    """The shared store (Redis) cannot be reached."""


@dataclass
class Turn:
    """One frame's hold on its session: the state before the frame, and `save` for the state after."""

    id: str
    frame: int  # this frame's number: 1 for a new session
    state: bytes | None  # None on the first frame
    existed: bool
    saved: bytes | None = None
    evicted: str | None = None  # the id the start of this session ended, set once it is saved

    def save(self, state: bytes) -> None:
        self.saved = state


class TrackSessions(Protocol):
    idle_s: float
    per_key: int

    def turn(
        self, namespace: str, session_id: str, binding: Binding
    ) -> contextlib.AbstractAsyncContextManager[Turn]:
        """Hold the session for one frame (`SessionGone`, `SessionMismatch`); the state given to
        `Turn.save` is kept when the block ends without an exception (a new session starts then)."""
        ...

    async def sessions(self, namespace: str) -> list[SessionInfo]:
        """The namespace's live sessions, oldest first."""
        ...

    async def end(self, namespace: str, session_id: str) -> bool:
        """End a session (its id is free at once); False when there was none."""
        ...

    async def active(self) -> int:
        """Live sessions, all namespaces."""
        ...

    async def close(self) -> None: ...


class _Locks:
    """One `asyncio.Lock` per session while someone holds or waits for it (first come, first served)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def tombstone_s(idle_s: float) -> float:
    return max(TOMBSTONE_MIN_S, 10 * idle_s)


@dataclass
class _Session:
    binding: Binding
    state: bytes
    frames: int
    created: datetime
    last_used: datetime


@dataclass
class _Namespace:
    sessions: dict[str, _Session] = field(default_factory=dict)
    ended: dict[str, tuple[Ending, datetime]] = field(default_factory=dict)  # id -> (why, free from)


class MemoryTrackSessions:
    """One process's sessions, in a dict (several workers would each have their own: use Redis)."""

    def __init__(self, idle_s: float, per_key: int, clock: Clock = utc_now) -> None:
        self.idle_s, self.per_key, self.clock = idle_s, per_key, clock
        self._spaces: dict[str, _Namespace] = {}
        self._locks = _Locks()

    def _sweep(self, now: datetime) -> None:
        """Idle sessions end (leaving a tombstone), old tombstones go."""
        keep_for = tombstone_s(self.idle_s)
        for name, space in list(self._spaces.items()):
            for sid, s in list(space.sessions.items()):
                if (now - s.last_used).total_seconds() >= self.idle_s:
                    del space.sessions[sid]
                    space.ended[sid] = ("idle", s.last_used + timedelta(seconds=self.idle_s + keep_for))
            space.ended = {sid: e for sid, e in space.ended.items() if e[1] > now}
            if not space.sessions and not space.ended:
                del self._spaces[name]

    @contextlib.asynccontextmanager
    async def turn(self, namespace: str, session_id: str, binding: Binding) -> AsyncIterator[Turn]:
        async with self._locks.hold((namespace, session_id)):
            now = self.clock()
            self._sweep(now)
            space = self._spaces.get(namespace, _Namespace())
            session = space.sessions.get(session_id)
            if session is None and session_id in space.ended:
                raise SessionGone(session_id, space.ended[session_id][0], self.idle_s, self.per_key)
            if session is not None and session.binding != binding:
                raise SessionMismatch(session_id, session.binding, binding)
            turn = Turn(
                session_id,
                1 if session is None else session.frames + 1,
                None if session is None else session.state,
                session is not None,
            )
            yield turn
            if turn.saved is not None:
                self._save(namespace, turn, binding)

    def _save(self, namespace: str, turn: Turn, binding: Binding) -> None:
        now = self.clock()
        space = self._spaces.setdefault(namespace, _Namespace())
        session = space.sessions.get(turn.id)
        if session is None:
            if turn.existed:  # ended while this frame ran (deleted, evicted): not brought back
                return
            if len(space.sessions) >= self.per_key:
                oldest = min(space.sessions, key=lambda sid: space.sessions[sid].last_used)
                del space.sessions[oldest]
                space.ended[oldest] = ("evicted", now + timedelta(seconds=tombstone_s(self.idle_s)))
                turn.evicted = oldest
            session = space.sessions[turn.id] = _Session(binding, b"", 0, now, now)
        session.state, session.frames, session.last_used = turn.saved or b"", turn.frame, now

    async def sessions(self, namespace: str) -> list[SessionInfo]:
        now = self.clock()
        self._sweep(now)
        space = self._spaces.get(namespace, _Namespace())
        return sorted(
            (
                SessionInfo(
                    sid,
                    s.binding.model,
                    s.binding.tracker,
                    s.frames,
                    s.created,
                    s.last_used,
                    self.idle_s - (now - s.last_used).total_seconds(),
                )
                for sid, s in space.sessions.items()
            ),
            key=lambda info: info.created,
        )

    async def end(self, namespace: str, session_id: str) -> bool:
        self._sweep(self.clock())
        space = self._spaces.get(namespace, _Namespace())
        found = space.sessions.pop(session_id, None) is not None
        return space.ended.pop(session_id, None) is not None or found

    async def active(self) -> int:
        self._sweep(self.clock())
        return sum(len(space.sessions) for space in self._spaces.values())

    async def close(self) -> None:
        return None


# Start a session in the key's LRU set: idle members leave it; past the bound, the least recently
# used member is ended with a tombstone. Atomic, so replicas starting sessions at once keep the bound.
_START_LUA = """
local lru, all, prefix, ns, sid = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local now, idle, per_key, tomb = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
redis.call('ZREMRANGEBYSCORE', lru, '-inf', now - idle)
local evicted = ''
while redis.call('ZCARD', lru) >= per_key do
  local oldest = redis.call('ZRANGE', lru, 0, 0)[1]
  redis.call('ZREM', lru, oldest)
  redis.call('ZREM', all, ns .. ':' .. oldest)
  redis.call('DEL', prefix .. 'meta:' .. ns .. ':' .. oldest, prefix .. 'state:' .. ns .. ':' .. oldest)
  redis.call('SET', prefix .. 'ended:' .. ns .. ':' .. oldest, 'evicted', 'EX', tomb)
  evicted = oldest
end
redis.call('ZADD', lru, now, sid)
redis.call('EXPIRE', lru, math.ceil(idle) + 1)
return evicted
"""

_UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTrackSessions:
    """Sessions every replica reaches: per session a metadata hash (kept `tombstone_s` past its idle
    end, so an idle-ended id answers 410), its state (kept `idle_s`), a lock key; per namespace an
    LRU sorted set; an `ended:` key marks an evicted id."""

    PREFIX = "trident:track:"

    def __init__(
        self,
        url: str,
        idle_s: float,
        per_key: int,
        timeout_s: float = 0.5,
        clock: Clock = utc_now,
        lock_wait_s: float = 120.0,
    ) -> None:
        import redis.asyncio as redis

        self.idle_s, self.per_key, self.clock, self.lock_wait_s = idle_s, per_key, clock, lock_wait_s
        self._redis: redis.Redis = redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._start = self._redis.register_script(_START_LUA)
        self._unlock = self._redis.register_script(_UNLOCK_LUA)
        self._locks = _Locks()

    def _key(self, kind: str, namespace: str, session_id: str = "") -> str:
        return f"{self.PREFIX}{kind}:{namespace}" + (f":{session_id}" if session_id else "")

    @contextlib.asynccontextmanager
    async def _unavailable(self) -> AsyncIterator[None]:
        import redis.exceptions

        try:
            yield
        except (redis.exceptions.RedisError, OSError):
            raise StoreUnavailable("the track-session store is unreachable") from None

    @contextlib.asynccontextmanager
    async def _lock(self, namespace: str, session_id: str) -> AsyncIterator[None]:
        key, token = self._key("lock", namespace, session_id), secrets.token_hex(8)
        deadline = time.monotonic() + self.lock_wait_s
        async with self._unavailable():
            while not await self._redis.set(key, token, nx=True, px=int(LOCK_LEASE_S * 1000)):
                if time.monotonic() > deadline:
                    raise StoreUnavailable(f"track session {session_id!r} stayed busy on another replica")
                await asyncio.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            async with self._unavailable():
                await self._unlock(keys=[key], args=[token])

    @contextlib.asynccontextmanager
    async def turn(self, namespace: str, session_id: str, binding: Binding) -> AsyncIterator[Turn]:
        async with self._locks.hold((namespace, session_id)), self._lock(namespace, session_id):
            now = self.clock().timestamp()
            async with self._unavailable():
                pipe = self._redis.pipeline(transaction=False)
                pipe.hgetall(self._key("meta", namespace, session_id))
                pipe.get(self._key("state", namespace, session_id))
                pipe.get(self._key("ended", namespace, session_id))
                meta, state, ended = await pipe.execute()
            if meta:
                if now - float(meta[b"last_used"]) >= self.idle_s:
                    raise SessionGone(session_id, "idle", self.idle_s, self.per_key)
                started = Binding(
                    meta[b"model"].decode(), meta[b"tracker"].decode(), meta[b"options"].decode()
                )
                if started != binding:
                    raise SessionMismatch(session_id, started, binding)
            elif ended:
                raise SessionGone(session_id, "evicted", self.idle_s, self.per_key)
            turn = Turn(
                session_id, int(meta[b"frames"]) + 1 if meta else 1, state if meta else None, bool(meta)
            )
            yield turn
            if turn.saved is not None:
                async with self._unavailable():
                    await self._save(namespace, turn, binding)

    async def _save(self, namespace: str, turn: Turn, binding: Binding) -> None:
        now = self.clock().timestamp()
        meta_key = self._key("meta", namespace, turn.id)
        lru, every = self._key("lru", namespace), f"{self.PREFIX}all"
        if turn.existed:
            if not await self._redis.exists(meta_key):  # ended while this frame ran: not brought back
                return
            await self._redis.zadd(lru, {turn.id: now})
        else:
            tomb = str(int(tombstone_s(self.idle_s)))
            evicted = await self._start(
                keys=[lru, every],
                args=[self.PREFIX, namespace, turn.id, now, self.idle_s, self.per_key, tomb],
            )
            turn.evicted = evicted.decode() or None
        fields: dict[Any, Any] = {"frames": turn.frame, "last_used": now}
        if not turn.existed:
            fields |= {
                "model": binding.model,
                "tracker": binding.tracker,
                "options": binding.options,
                "created": now,
            }
        keep_ms = int((self.idle_s + tombstone_s(self.idle_s)) * 1000)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(meta_key, mapping=fields)
        pipe.pexpire(meta_key, keep_ms)
        pipe.set(self._key("state", namespace, turn.id), turn.saved or b"", px=int(self.idle_s * 1000))
        pipe.delete(self._key("ended", namespace, turn.id))
        pipe.zadd(every, {f"{namespace}:{turn.id}": now})
        await pipe.execute()

    async def sessions(self, namespace: str) -> list[SessionInfo]:
        now = self.clock().timestamp()
        async with self._unavailable():
            found_ids = await self._redis.zrangebyscore(
                self._key("lru", namespace), f"({now - self.idle_s}", "+inf"
            )
            ids = [sid for sid in found_ids if isinstance(sid, bytes)]
            pipe = self._redis.pipeline(transaction=False)
            for sid in ids:
                pipe.hgetall(self._key("meta", namespace, sid.decode()))
            metas = await pipe.execute()
        found = []
        for sid, meta in zip(ids, metas, strict=True):
            if not meta:
                continue
            last = float(meta[b"last_used"])
            found.append(
                SessionInfo(
                    sid.decode(),
                    meta[b"model"].decode(),
                    meta[b"tracker"].decode(),
                    int(meta[b"frames"]),
                    datetime.fromtimestamp(float(meta[b"created"]), UTC),
                    datetime.fromtimestamp(last, UTC),
                    self.idle_s - (now - last),
                )
            )
        return sorted(found, key=lambda info: info.created)

    async def end(self, namespace: str, session_id: str) -> bool:
        async with self._unavailable():
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(
                self._key("meta", namespace, session_id),
                self._key("state", namespace, session_id),
                self._key("ended", namespace, session_id),
            )
            pipe.zrem(self._key("lru", namespace), session_id)
            pipe.zrem(f"{self.PREFIX}all", f"{namespace}:{session_id}")
            removed = await pipe.execute()
        return bool(removed[0])

    async def active(self) -> int:
        every = f"{self.PREFIX}all"
        async with self._unavailable():
            now = self.clock().timestamp()
            pipe = self._redis.pipeline(transaction=True)
            pipe.zremrangebyscore(every, "-inf", now - self.idle_s)
            pipe.zcard(every)
            _, count = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        await self._redis.aclose()
