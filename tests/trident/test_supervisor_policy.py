"""The supervisor of `trident run` on throwaway commands (no Triton): backoff, crash-loop rule,
probes, stopping whole process groups, and the cleanup of a dead tritonserver's stubs and regions."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from trident import runtime, supervisor
from trident.stopping import Stop
from trident.supervisor import Child, GaveUp, RestartPolicy, StartFailed, Supervisor

FAST = RestartPolicy(limit=2, window_s=60, backoff_max_s=0.05)


def run_until(sup: Supervisor, done: Stop | None = None, timeout_s: float = 20) -> None:
    """Run `sup` in this thread until `done` is set (from outside) or `timeout_s` passes."""
    stop = done or Stop()
    timer = threading.Timer(timeout_s, stop.set)
    timer.start()
    try:
        sup.run(stop)
    finally:
        timer.cancel()


def test_backoff_doubles_from_one_second_up_to_the_cap() -> None:
    policy = RestartPolicy(limit=10, window_s=600, backoff_max_s=30)
    assert [policy.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(10_000) == 30


def test_a_crashing_child_is_restarted_then_given_up_in_one_line_naming_its_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "crasher.log"
    # never ready: a busy machine may otherwise see the shell alive at a poll and say "up again"
    child = Child("crasher", ["sh", "-c", "echo started; exit 3"], log, probe=lambda: False)
    said: list[str] = []
    restarts: list[str] = []
    sup = Supervisor([child], FAST, said.append, restarts.append, poll_s=0.01)
    with pytest.raises(GaveUp) as info:
        run_until(sup)
    message = str(info.value)
    assert message.startswith("crasher failed 3 times in ")
    assert "at most 2 restarts per 60 s; last: exited unexpectedly with code 3" in message
    assert message.endswith(f"Its last log lines are in {log}") and "\n" not in message
    assert restarts == ["crasher", "crasher"]
    assert len(said) == 2 and all("restarting it in" in line for line in said)
    deadline = time.monotonic() + 5
    while log.read_text().count("started") < 3:  # the output pump writes it
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.01)


def test_failures_outside_the_window_do_not_count(tmp_path: Path) -> None:
    child = Child("crasher", ["sh", "-c", "sleep 0.2; exit 1"], tmp_path / "c.log")
    restarts: list[str] = []
    policy = RestartPolicy(limit=1, window_s=0.1, backoff_max_s=0.01)  # each failure is alone in its window
    done = Stop()

    def count(name: str) -> None:
        restarts.append(name)
        if len(restarts) == 4:
            done.set()

    run_until(Supervisor([child], policy, lambda line: None, count, poll_s=0.01), done)
    assert len(restarts) == 4


def test_a_child_whose_probe_fails_is_stopped_and_restarted(tmp_path: Path) -> None:
    probes = iter([False, StartFailed("reports it is not live"), True])

    def probe() -> bool:
        answer = next(probes)
        if isinstance(answer, Exception):
            raise answer
        return answer

    child = Child("server", ["sleep", "60"], tmp_path / "s.log", probe=probe)
    said: list[str] = []
    done = Stop()
    sup = Supervisor([child], FAST, lambda line: (said.append(line), "up again" in line and done.set()))
    run_until(sup, done)
    assert "reports it is not live; restarting it in" in said[0]
    assert "server is up again" in said[1]
    assert child.process is None  # stopped when the run ended


def test_a_child_not_ready_in_time_is_restarted(tmp_path: Path) -> None:
    child = Child("slow", ["sleep", "60"], tmp_path / "s.log", probe=lambda: False, start_timeout_s=0.1)
    said: list[str] = []
    done = Stop()
    run_until(Supervisor([child], FAST, lambda line: (said.append(line), done.set()), poll_s=0.01), done)
    assert "was not ready after 0 s; restarting it in" in said[0]


def test_stopping_ends_the_children_in_reverse_order_with_their_process_groups(tmp_path: Path) -> None:
    order = tmp_path / "order"
    script = f"trap 'echo $0 >> {order}; exit 0' TERM; sleep 300 & wait"
    first = Child("first", ["sh", "-c", script, "first"], tmp_path / "1.log")
    second = Child("second", ["sh", "-c", script, "second"], tmp_path / "2.log")
    stop = Stop()
    sup = Supervisor([first, second], FAST, lambda line: None, poll_s=0.01)
    thread = threading.Thread(target=sup.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while not (first.process and second.process and len(_group(first.process.pid)) == 2):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert first.process is not None and second.process is not None
    groups = [first.process.pid, second.process.pid]
    stop.set()
    thread.join(20)
    assert order.read_text().split() == ["second", "first"]  # the frontend drains before Triton stops
    assert [_group(g) for g in groups] == [[], []], "a `sleep` of theirs survived"


def _group(pgid: int) -> list[int]:
    return [p.pid for p in supervisor.processes() if p.pgid == pgid and p.state != "Z"]


@pytest.fixture
def shm_names() -> Iterator[list[str]]:
    """Unique /dev/shm names for a test, removed afterwards whatever happens."""
    names = [f"{runtime.STUB_SHM_PREFIX}test-{uuid.uuid4()}" for _ in range(3)]
    yield names
    supervisor.remove_shm(names)


def test_a_dead_servers_stubs_are_killed_and_only_stale_regions_removed(
    tmp_path: Path, shm_names: list[str]
) -> None:
    own, stale, live = shm_names
    for name in shm_names:
        (supervisor.SHM / name).write_bytes(b"\0" * 4096)
    old = time.time() - 60
    for name in (stale, live):
        os.utime(supervisor.SHM / name, (old, old))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stub_binary = tmp_path / runtime.STUB  # a Python named like the stub, so its argv[0] is the stub's
    stub_binary.symlink_to(sys.executable)
    model = tmp_path / "model.py"
    model.write_text("import time\ntime.sleep(300)\n")
    stub = subprocess.Popen([str(stub_binary), str(model), own, "1048576", "1048576", str(dead.pid), "x"])
    with (supervisor.SHM / live).open("r+b") as f, mmap.mmap(f.fileno(), 4096):  # a live server's region
        time.sleep(0.3)  # the stub is running
        removed = runtime.clean_leftovers(dead.pid)
        assert stub.wait(5) == -9
        assert own in removed and stale in removed and live not in removed
        assert (supervisor.SHM / live).exists()


def test_describe_exit_names_the_signal() -> None:
    assert supervisor.describe_exit(-9) == "was killed by SIGKILL"
    assert supervisor.describe_exit(2) == "exited unexpectedly with code 2"
