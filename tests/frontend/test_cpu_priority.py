"""CPU work runs on threads that yield to the event loop (`TRIDENT_CPU_NICE`)."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace
from typing import Any

from anyio import CapacityLimiter

from frontend.serving.inference import run_cpu
from tests.helpers.aio import run


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_cpu_work_runs_lower_than_the_event_loop_and_the_loop_keeps_its_priority() -> None:
    async def main() -> tuple[int, list[int], int]:
        engine: Any = SimpleNamespace(cpu_limiter=CapacityLimiter(2), cpu_nice=3)
        loop_before = niceness()
        seen = [await run_cpu(engine, niceness) for _ in range(4)]  # a thread lowers itself once
        return loop_before, seen, niceness()

    base = niceness()  # a new thread starts at its creator's
    loop_before, seen, loop_after = run(main())  # a worker thread: pytest's may run a loop already
    assert loop_before == loop_after == base
    assert seen == [min(19, base + 3)] * 4
