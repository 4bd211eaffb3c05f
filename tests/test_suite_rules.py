"""Rules the whole suite keeps, so a test that passes alone also passes in `make test`."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).parent


def test_no_test_calls_asyncio_run() -> None:
    """Playwright's session (the browser tests) keeps an event loop running in the main thread, so
    `asyncio.run` in a later test fails there while it passes alone; `tests.helpers.aio.run` runs
    the coroutine on a worker thread. (Scripts run as subprocesses have their own main thread.)"""
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("test_*.py")
        if path.name != Path(__file__).name and "asyncio.run(" in path.read_text()
    ]
    assert offenders == []
