"""The track-session stores' limits, on a clock the test moves: idle timeout, the per-key bound
(least recently used first), tombstones and their end, DELETE, the binding, and frames of one
session taken one at a time in arrival order. Each rule runs on the in-process store and on the
Redis store against a real `redis-server` (tombstone expiry is Redis's own TTL, real time: the
in-process store's alone is checked on the moved clock)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from store.track_sessions import (
    Binding,
    MemoryTrackSessions,
    RedisTrackSessions,
    SessionGone,
    SessionMismatch,
    TrackSessions,
    tombstone_s,
)
from tests.helpers.aio import run
from tests.helpers.clock import Clock
from tests.helpers.stack import free_port, start_redis

IDLE_S, PER_KEY = 60.0, 3
DETECT = Binding("acme/shapes/det", "botsort", "conf=0.1")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = start_redis(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait()


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(kind: str, clock: Clock, redis_url: str) -> TrackSessions:
    if kind == "memory":
        return MemoryTrackSessions(IDLE_S, PER_KEY, clock)
    subprocess.run(["redis-cli", "-u", redis_url, "flushall"], check=True, capture_output=True)
    return RedisTrackSessions(redis_url, IDLE_S, PER_KEY, clock=clock)


async def frame(
    store: TrackSessions, sid: str, key: str = "k1", binding: Binding = DETECT
) -> tuple[int, str | None]:
    """One frame through the session: its number and the id its start evicted."""
    async with store.turn(key, sid, binding) as turn:
        state = turn.state or b""
        assert state == (b"" if turn.frame == 1 else f"{sid}:{turn.frame - 1}".encode())
        turn.save(f"{sid}:{turn.frame}".encode())
    return turn.frame, turn.evicted


def test_frames_are_numbered_and_carry_the_state(kind: str, redis_url: str) -> None:
    async def scenario() -> None:
        store = make(kind, Clock(), redis_url)
        try:
            assert [(await frame(store, "cam"))[0] for _ in range(4)] == [1, 2, 3, 4]
            assert (await frame(store, "cam", key="k2"))[0] == 1  # another key's "cam" is its own
            [info] = await store.sessions("k1")
            assert (info.id, info.model, info.tracker, info.frames) == ("cam", DETECT.model, "botsort", 4)
            assert await store.active() == 2
        finally:
            await store.close()

    run(scenario())


def test_a_failed_frame_leaves_the_session_as_it_was(kind: str, redis_url: str) -> None:
    async def scenario() -> None:
        store = make(kind, Clock(), redis_url)
        try:
            await frame(store, "cam")
            with pytest.raises(RuntimeError):  # noqa: PT012 (the failure is inside the turn)
                async with store.turn("k1", "cam", DETECT) as turn:
                    turn.save(b"never kept")
                    raise RuntimeError("the model failed")
            assert (await frame(store, "cam"))[0] == 2
            with pytest.raises(RuntimeError):
                async with store.turn("k1", "new", DETECT):
                    raise RuntimeError("the first frame failed")
            assert [s.id for s in await store.sessions("k1")] == ["cam"]  # no session was started
        finally:
            await store.close()

    run(scenario())


def test_idle_at_the_limit_ends_with_gone_then_the_id_is_free(kind: str, redis_url: str) -> None:
    async def scenario() -> None:
        clock = Clock()
        store = make(kind, clock, redis_url)
        try:
            await frame(store, "cam")
            clock.now += timedelta(seconds=IDLE_S - 0.001)
            assert (await frame(store, "cam"))[0] == 2  # just inside: still alive, and refreshed
            clock.now += timedelta(seconds=IDLE_S)
            assert await store.sessions("k1") == []
            assert await store.active() == 0
            with pytest.raises(SessionGone, match=r"unused for 60 s \(track_session_idle_s\)"):
                await frame(store, "cam")
            if kind == "memory":  # Redis ends the tombstone by its own TTL, in real time
                clock.now += timedelta(seconds=tombstone_s(IDLE_S) - 1)
                with pytest.raises(SessionGone):
                    await frame(store, "cam")
                clock.now += timedelta(seconds=1)
                assert (await frame(store, "cam"))[0] == 1
        finally:
            await store.close()

    run(scenario())


def test_past_the_bound_the_least_recently_used_is_evicted(kind: str, redis_url: str) -> None:
    async def scenario() -> None:
        clock = Clock()
        store = make(kind, clock, redis_url)
        try:
            for sid in ("a", "b", "c"):  # exactly the bound: nobody is evicted
                assert (await frame(store, sid))[1] is None
                clock.now += timedelta(seconds=1)
            await frame(store, "a")  # "a" is now the most recently used, "b" the least
            clock.now += timedelta(seconds=1)
            assert await frame(store, "d") == (1, "b")
            assert sorted(s.id for s in await store.sessions("k1")) == ["a", "c", "d"]
            with pytest.raises(SessionGone, match=r"more than 3 sessions \(track_sessions_per_key\)"):
                await frame(store, "b")
            assert (await frame(store, "a"))[0] == 3  # the others go on
            assert await frame(store, "x", key="k2") == (1, None)  # another key's bound is its own
            if kind == "memory":
                clock.now += timedelta(seconds=tombstone_s(IDLE_S))
                assert (await frame(store, "b"))[0] == 1
        finally:
            await store.close()

    run(scenario())


def test_an_idle_session_does_not_count_against_the_bound(kind: str, redis_url: str) -> None:
    async def scenario() -> None:
        clock = Clock()
        store = make(kind, clock, redis_url)
        try:
            await frame(store, "old")
            clock.now += timedelta(seconds=IDLE_S)
            for sid in ("a", "b", "c"):
                assert (await frame(store, sid))[1] is None
        finally:
            await store.close()

    run(scenario())


def test_delete_frees_the_id_at_once(kind: str, redis_url: str) -> None:
    async def scenario() -> None:
        clock = Clock()
        store = make(kind, clock, redis_url)
        try:
            await frame(store, "cam")
            await frame(store, "cam")
            assert await store.end("k1", "cam") is True
            assert await store.end("k1", "cam") is False
            assert await store.end("k2", "cam") is False
            assert (await frame(store, "cam"))[0] == 1
            clock.now += timedelta(seconds=IDLE_S)
            assert await store.end("k1", "cam") is True  # an ended id's tombstone goes too
            assert (await frame(store, "cam"))[0] == 1
        finally:
            await store.close()

    run(scenario())


def test_another_model_or_options_is_a_mismatch_naming_the_start(kind: str, redis_url: str) -> None:
    async def scenario() -> None:
        store = make(kind, Clock(), redis_url)
        try:
            await frame(store, "cam")
            other = Binding("acme/shapes/det", "bytetrack", "conf=0.1")
            with pytest.raises(SessionMismatch, match="started with model acme/shapes/det, tracker botsort"):
                await frame(store, "cam", binding=other)
            assert (await frame(store, "cam"))[0] == 2
        finally:
            await store.close()

    run(scenario())


def test_frames_of_one_session_take_turns_in_arrival_order(kind: str, redis_url: str) -> None:
    async def scenario() -> None:
        store = make(kind, Clock(), redis_url)
        inside, order = 0, []

        async def one(i: int) -> None:
            nonlocal inside
            async with store.turn("k1", "cam", DETECT) as turn:
                inside += 1
                assert inside == 1, "two frames of one session ran at once"
                await asyncio.sleep(0.01)
                order.append((i, turn.frame))
                turn.save(b"")
                inside -= 1

        try:
            tasks = []
            for i in range(6):
                tasks.append(asyncio.create_task(one(i)))
                await asyncio.sleep(0)  # each arrives before the next
            await asyncio.gather(*tasks)
            assert order == [(i, i + 1) for i in range(6)]
        finally:
            await store.close()

    run(scenario())


def test_an_unreachable_redis_is_unavailable(tmp_path: Path) -> None:
    from store.track_sessions import StoreUnavailable

    async def scenario() -> None:
        store = RedisTrackSessions(f"redis://127.0.0.1:{free_port()}/0", IDLE_S, PER_KEY, timeout_s=0.2)
        try:
            with pytest.raises(StoreUnavailable):
                await frame(store, "cam")
            with pytest.raises(StoreUnavailable):
                await store.sessions("k1")
        finally:
            await store.close()

    run(scenario())
