"""Keeps `trident run`'s children up: restarts with backoff, ends crash loops, stops everything cleanly.

Many self-hosters run `trident run` as their production on one box, so a tritonserver taken by the
OOM killer (or a crashing backend) must not take the API down for good: the child is restarted
after 1 s, 2 s, 4 s ... (capped), while the other keeps serving (the frontend answers 503 with
`Retry-After` while Triton is away). A child failing more often than the policy allows ends the
run with one line naming it and its log file, rather than looping forever.

Each child runs in its own session (its own process group), so what it leaves behind when it dies
(Triton's Python-backend stubs, uvicorn's workers) can be found and ended. Linux only (/proc,
/dev/shm), as Triton is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from trident.stopping import CHILD_STOP_S, Stop, ending_with_us, terminate

SHM = Path("/dev/shm")  # noqa: S108 - where POSIX shared memory lives, not a temporary file
LOG_MAX_BYTES = 10 * 1024 * 1024  # a child's log is rotated to `<name>.log.1` past this


class StartFailed(Exception):
    """A child that runs but will never serve (Triton reporting a startup error): restart it."""


class GaveUp(Exception):
    """A child failed more often than the restart policy allows; the message is the line to print."""


@dataclass(frozen=True)
class RestartPolicy:
    limit: int  # restarts allowed within `window_s`; one more failure gives up
    window_s: float
    backoff_max_s: float

    def delay(self, earlier_failures: int) -> float:
        """1 s after the first failure in the window, then 2 s, 4 s ... up to the cap."""
        return float(min(self.backoff_max_s, 2.0 ** min(earlier_failures, 30)))


def _always_ready() -> bool:
    return True


def _end_group(pid: int) -> None:
    wait_gone(kill_group(pid), timeout_s=5.0)


@dataclass
class Child:
    """One supervised command, and what the supervisor knows about its current run."""

    name: str
    command: list[str]
    log: Path  # its output, appended (also echoed to our stderr)
    env: dict[str, str] | None = None
    probe: Callable[[], bool] = _always_ready  # serving yet? May raise StartFailed
    cleanup: Callable[[int], object] = _end_group  # given its pid once it is gone: end what it left
    start_timeout_s: float = 120.0  # not ready by then: failed
    stop_timeout_s: float = CHILD_STOP_S  # SIGTERM, then SIGKILL after this
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready: bool = False
    due: float | None = None  # when the pending restart starts
    failures: list[float] = field(default_factory=list)  # monotonic times, within the policy's window


class Supervisor:
    """Starts `children` in order, keeps them up, stops them in reverse order (the frontend drains first)."""

    def __init__(
        self,
        children: list[Child],
        policy: RestartPolicy,
        say: Callable[[str], None],
        on_restart: Callable[[str], None] = lambda name: None,
        poll_s: float = 0.2,
    ) -> None:
        self.children, self.policy, self.say = children, policy, say
        self.on_restart, self.poll_s = on_restart, poll_s
        self.stop: Stop | None = None  # the run's, once it runs

    def run(self, stop: Stop) -> None:
        """Keep every child up until a stop is asked for, then stop them; GaveUp (after stopping) on a
        crash loop. A stop that escalates (`stop.hurried`) kills what is still running at once."""
        self.stop = stop
        try:
            for child in self.children:
                if stop.is_set():
                    break
                self._start(child)
            while not stop.wait(self.poll_s):
                for child in self.children:
                    self._tend(child)
            self.say("stopping (Ctrl-C or SIGTERM once more kills at once)")
        finally:
            for child in reversed(self.children):
                self._stop(child, child.stop_timeout_s)
        if stop.hurried is not None:
            self.say("asked to stop twice: what was still running was killed")

    def _start(self, child: Child) -> None:
        child.log.parent.mkdir(parents=True, exist_ok=True)
        try:
            child.process = subprocess.Popen(
                ending_with_us(child.command),
                env=child.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C is ours to pass on; its leftovers are one group
            )
        except OSError as exc:
            raise GaveUp(f"could not start {child.name}: {exc}") from None
        assert child.process.stdout is not None
        threading.Thread(target=_pump, args=(child.process.stdout, child.log), daemon=True).start()
        child.started_at, child.ready, child.due = time.monotonic(), False, None

    def _tend(self, child: Child) -> None:
        """One look at `child`: restart it when due, notice an exit, or probe a start in progress."""
        now = time.monotonic()
        if child.process is None:
            if child.due is not None and now >= child.due:
                self._start(child)
                self.on_restart(child.name)
            return
        code = child.process.poll()
        if code is not None:
            self._failed(child, describe_exit(code))
            return
        if child.ready:
            return
        try:
            child.ready = child.probe()
        except StartFailed as exc:
            self._failed(child, str(exc))
            return
        if child.ready and child.failures:
            self.say(
                f"{child.name} is up again (pid {child.process.pid}, "
                f"{now - child.failures[-1]:.1f} s after it failed)"
            )
        elif not child.ready and now - child.started_at > child.start_timeout_s:
            self._failed(child, f"was not ready after {child.start_timeout_s:.0f} s")

    def _failed(self, child: Child, reason: str) -> None:
        """Clean up after `child`, then schedule its restart, or give up past the policy's limit."""
        assert child.process is not None
        pid = child.process.pid
        self._stop(child, timeout_s=5.0)
        now = time.monotonic()
        child.failures = [t for t in child.failures if now - t < self.policy.window_s] + [now]
        if len(child.failures) > self.policy.limit:
            raise GaveUp(
                f"{child.name} failed {len(child.failures)} times in {now - child.failures[0]:.0f} s "
                f"(at most {self.policy.limit} restarts per {self.policy.window_s:.0f} s; "
                f"last: {reason}); giving up. Its last log lines are in {child.log}"
            )
        delay = self.policy.delay(len(child.failures) - 1)
        child.due = now + delay
        self.say(
            f"{child.name} (pid {pid}) {reason}; restarting it in {delay:.0f} s "
            f"(restart {len(child.failures)} of at most {self.policy.limit} per {self.policy.window_s:.0f} s)"
        )

    def _stop(self, child: Child, timeout_s: float) -> None:
        """SIGTERM (SIGKILL after `timeout_s`), then its cleanup, then whatever is left of its group."""
        process, child.process, child.ready, child.due = child.process, None, False, None
        if process is None:
            return
        terminate(process, timeout_s, self.stop)
        child.cleanup(process.pid)
        _end_group(process.pid)  # whatever the cleanup left of its group


def describe_exit(code: int) -> str:
    """`exited with code 1`, or `was killed by SIGKILL` for Popen's negative codes."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited unexpectedly with code {code}"


def _pump(stream: IO[bytes], log: Path) -> None:
    """Copy a child's output to its log file (rotated past LOG_MAX_BYTES) and to our stderr."""
    out = log.open("ab")
    try:
        for line in iter(stream.readline, b""):
            with contextlib.suppress(OSError, ValueError):  # a closed terminal must not stop the log
                sys.stderr.buffer.write(line)
                sys.stderr.buffer.flush()
            out.write(line)
            out.flush()
            if out.tell() > LOG_MAX_BYTES:
                out.close()
                log.replace(log.with_name(log.name + ".1"))
                out = log.open("ab")
    finally:
        out.close()


@dataclass(frozen=True)
class Proc:
    pid: int
    pgid: int
    state: str  # "Z": a zombie, already gone but for its exit status
    argv: list[str]


def processes() -> list[Proc]:
    """The processes in /proc (those that vanish while we read are skipped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        names = [a.decode(errors="replace") for a in argv if a]
        found.append(Proc(int(entry.name), int(fields[2]), fields[0], names))
    return found


def kill_group(pgid: int) -> list[int]:
    """SIGKILL every live process of group `pgid` (a dead child's stubs or workers); their pids."""
    members = [p.pid for p in processes() if p.pgid == pgid and p.state != "Z"]
    if members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return members


def kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait_gone(pids: list[int], timeout_s: float) -> bool:
    """Whether every one of `pids` is gone (or a zombie) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = {p.pid for p in processes() if p.state != "Z"}
        if not alive.intersection(pids):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def mapped_shm() -> set[str]:
    """Names of the /dev/shm files some process (that we may read) has mapped."""
    names = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                for line in (entry / "maps").read_text().splitlines():
                    where = line.find(f"{SHM}/")
                    if where >= 0:
                        names.add(line[where + len(str(SHM)) + 1 :].removesuffix(" (deleted)"))
    return names


def stale_shm(prefix: str, min_age_s: float = 5.0) -> list[str]:
    """Our /dev/shm files named `prefix...` that no process maps, older than `min_age_s` (a region is
    created a moment before it is mapped)."""
    if not SHM.is_dir():
        return []
    mapped, now, uid = mapped_shm(), time.time(), os.getuid()
    stale = []
    for path in SHM.glob(f"{prefix}*"):
        with contextlib.suppress(OSError):
            info = path.stat()
            if info.st_uid == uid and now - info.st_mtime > min_age_s and path.name not in mapped:
                stale.append(path.name)
    return stale


def shm_named(prefix: str) -> list[str]:
    """The /dev/shm files whose names start with `prefix`."""
    return [p.name for p in SHM.glob(f"{prefix}*")] if SHM.is_dir() else []


def remove_shm(names: Iterable[str]) -> list[str]:
    """Unlink these /dev/shm files; the names actually removed."""
    removed = []
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (SHM / name).unlink()
            removed.append(name)
    return removed
