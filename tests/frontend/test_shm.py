"""The shared-memory region pool: one request per region, reused, grown to fit, off for good on refusal."""

from __future__ import annotations

import asyncio
import logging
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from frontend.serving.shm import MIN_REGION_BYTES, Region, RegionPool, Transient
from tests.helpers.aio import run

MB = 1024 * 1024


class FakeTriton:
    """Records registrations like Triton's system shared-memory API; can refuse or be unreachable."""

    def __init__(self) -> None:
        self.registered: dict[str, int] = {}
        self.registrations = 0
        self.refuse: Exception | None = None

    async def register(self, region: Region) -> None:
        await asyncio.sleep(0)  # a real round trip lets other requests run meanwhile
        if self.refuse is not None:
            raise self.refuse
        assert region.name not in self.registered, "registered twice without unregistering"
        # Triton opens the segment by its key: it must exist, at least as big as declared
        segment = shared_memory.SharedMemory(region.key)
        assert segment.size >= region.byte_size
        segment.close()
        self.registered[region.name] = region.byte_size
        self.registrations += 1

    async def unregister(self, region: Region) -> None:
        del self.registered[region.name]


def segments(pool: RegionPool) -> list[str]:
    return sorted(p.name for p in Path("/dev/shm").glob(f"{pool._stem}-*"))


@pytest.fixture
def triton() -> FakeTriton:
    return FakeTriton()


def test_concurrent_requests_get_distinct_registered_regions(triton: FakeTriton) -> None:
    async def scenario() -> list[Region | None]:
        pool = RegionPool(triton.register, triton.unregister, max_regions=4)
        held = await asyncio.gather(*(pool.acquire(MB) for _ in range(4)))
        assert len(segments(pool)) == 4
        await pool.close()
        return list(held)

    held = run(scenario())
    assert all(r is not None for r in held)
    assert len({r.name for r in held if r}) == 4
    assert triton.registrations == 4


def test_a_released_region_is_reused_without_registering_again(triton: FakeTriton) -> None:
    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister)
        first = await pool.acquire(MB)
        assert first is not None
        pool.release(first)
        for _ in range(10):
            again = await pool.acquire(MB)
            assert again is first
            pool.release(again)
        assert len(pool.regions) == 1 and triton.registrations == 1
        await pool.close()

    run(scenario())


def test_a_bigger_input_gets_a_region_that_fits(triton: FakeTriton) -> None:
    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister, max_regions=1)
        small = await pool.acquire(MB)
        assert small is not None and small.byte_size == MIN_REGION_BYTES
        pool.release(small)
        big = 1280 * 1280 * 3  # the largest `imgsz` the API takes
        grown = await pool.acquire(big)
        assert grown is not None and grown.byte_size >= big
        assert triton.registered == {grown.name: grown.byte_size}  # the old size was unregistered
        assert segments(pool) == [grown.name]
        pool.release(grown)
        assert await pool.acquire(MB) is grown  # a big region serves small inputs too
        await pool.close()

    run(scenario())


def test_the_smallest_free_region_that_fits_is_chosen(triton: FakeTriton) -> None:
    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister)
        small, big = await pool.acquire(MB), await pool.acquire(4 * MB)
        assert small is not None and big is not None
        pool.release(big)
        pool.release(small)
        assert await pool.acquire(MB) is small
        assert await pool.acquire(MB) is big
        await pool.close()

    run(scenario())


def test_when_every_region_is_busy_the_request_goes_over_grpc(triton: FakeTriton) -> None:
    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister, max_regions=2)
        a, b = await pool.acquire(MB), await pool.acquire(MB)
        assert a is not None and b is not None
        assert await pool.acquire(MB) is None
        assert pool.enabled  # only busy, not broken
        pool.release(a)
        assert await pool.acquire(MB) is a
        await pool.close()

    run(scenario())


def test_a_refused_registration_turns_shared_memory_off_for_good_with_one_warning(
    triton: FakeTriton, caplog: pytest.LogCaptureFixture
) -> None:
    triton.refuse = RuntimeError("Unable to open shared memory region: '/trident-1'")

    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister)
        with caplog.at_level(logging.WARNING, "trident.frontend"):
            for _ in range(5):
                assert await pool.acquire(MB) is None
        assert not pool.enabled
        assert segments(pool) == []  # the refused segment is unlinked at once
        triton.refuse = None
        assert await pool.acquire(MB) is None  # for good: not tried again
        await pool.close()

    run(scenario())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "shared memory with Triton is off" in warnings[0].getMessage()
    assert triton.registrations == 0


def test_an_unreachable_triton_does_not_turn_shared_memory_off(triton: FakeTriton) -> None:
    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister)
        triton.refuse = Transient("failed to connect to all addresses")
        assert await pool.acquire(MB) is None
        assert pool.enabled
        triton.refuse = None
        region = await pool.acquire(MB)
        assert region is not None and triton.registered == {region.name: region.byte_size}
        await pool.close()

    run(scenario())


def test_a_request_cancelled_while_registering_gives_its_region_back(triton: FakeTriton) -> None:
    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister, max_regions=1)
        waiting = asyncio.ensure_future(pool.acquire(MB))
        await asyncio.sleep(0)  # inside `register`
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert pool.enabled and not pool.regions[0].busy and not pool.regions[0].registered
        region = await pool.acquire(MB)
        assert region is pool.regions[0] and region.registered
        await pool.close()

    run(scenario())


def test_regions_forgotten_by_triton_are_registered_again_when_next_used(triton: FakeTriton) -> None:
    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister)
        region = await pool.acquire(MB)
        assert region is not None
        pool.release(region)
        triton.registered.clear()  # Triton restarted
        pool.forget_registrations()
        assert await pool.acquire(MB) is region
        assert triton.registered == {region.name: region.byte_size} and triton.registrations == 2
        await pool.close()

    run(scenario())


def test_close_unregisters_and_unlinks_every_segment(triton: FakeTriton) -> None:
    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister)
        held = [await pool.acquire(MB) for _ in range(3)]
        assert len(segments(pool)) == 3 and held[0] is not None
        pool.release(held[0])  # one free, two still busy: close takes them all
        await pool.close()
        assert segments(pool) == []
        assert triton.registered == {}
        assert await pool.acquire(MB) is None

    run(scenario())


def test_tensors_are_written_one_after_the_other_at_aligned_offsets(triton: FakeTriton) -> None:
    async def scenario() -> None:
        pool = RegionPool(triton.register, triton.unregister)
        first = np.arange(1001, dtype=np.uint8).reshape(1, 1001)
        second = np.linspace(0, 1, 300, dtype=np.float32)
        region = await pool.acquire(2 * MB)
        assert region is not None
        offsets = region.write([first, second])
        assert offsets == [0, 1024]
        view = shared_memory.SharedMemory(region.key)
        np.testing.assert_array_equal(np.frombuffer(view.buf, np.uint8, 1001, 0), first.ravel())
        np.testing.assert_array_equal(np.frombuffer(view.buf, np.float32, 300, 1024), second)
        view.close()
        await pool.close()

    run(scenario())
