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


def test_the_container_tests_are_one_unit_handed_out_first() -> None:
    """`make test`'s scheduler: tests/containers/ builds and runs one stack, on one worker, from
    the start (it is the longest unit), while the other worker takes the rest."""
    from tests.helpers.scheduling import CONTAINERS, ContainersFirst, work_unit

    units = {work_unit(f"tests/containers/{f}::test_x") for f in ("test_compose.py", "test_kube_play.py")}
    assert units == {CONTAINERS}
    assert work_unit("tests/integration/test_tasks.py::t") != work_unit("tests/exporter/test_export.py::t")
    queue = ContainersFirst()
    for unit in ("tests/a.py", CONTAINERS, "tests/b.py"):
        queue[unit] = {}
    assert list(queue) == [CONTAINERS, "tests/a.py", "tests/b.py"]
