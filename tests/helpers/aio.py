"""Run a coroutine to completion from a synchronous test, whatever loop the thread already has.

Playwright's sync API keeps an event loop running in the main thread for the whole session (the
browser fixture), so `asyncio.run` there would fail; a worker thread has no loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
