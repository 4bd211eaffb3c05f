"""How `trident run` and `trident triton` stop: Ctrl-C and SIGTERM, recorded without a lock.

Python runs a signal handler in the main thread between two bytecodes, wherever that thread is:
also inside `threading.Event.wait`, which holds the event's (non-reentrant) lock for a moment on
every wake-up. A handler that sets an Event there waits for a lock its own thread holds, forever
(issue 31). So the handler here only appends to a list: one C call, no lock, no logging, no I/O.
The wake-up comes from Python's own C-level handler, which writes a byte to a pipe
(`signal.set_wakeup_fd`) that `Stop.wait` selects on; the code that waits then does the stopping.

A second request escalates: stop waiting for the graceful drain, kill the children, exit non-zero.
A repeat within `REPEAT_S` of the first is the same request passed on twice, not a second one:
GNU make passes a SIGTERM on to its job, so `make run` under a SIGTERM to its process group (a
terminal closing, a service manager) gets it twice within a millisecond.

The stop timeouts are below, innermost first: each outer one leaves the one inside it time to
finish (the "Stop timeouts" table of docs/operations/supervisor.md; tests/observability checks
the deploy files against them).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType

FRONTEND_DRAIN_S = 30  # uvicorn's graceful shutdown: requests in flight finish, then the app's shutdown
TRITON_EXIT_S = 30  # tritonserver --exit-timeout-secs: in-flight inferences finish, models unload
CHILD_STOP_S = 40  # `trident run` / `trident triton`: SIGTERM to a child, SIGKILL after this
CLEANUP_S = 10  # after a child is gone: the rest of its process group, stubs, shared memory (at most)
RUN_STOP_S = 2 * (CHILD_STOP_S + CLEANUP_S)  # `trident run`: the frontend, then tritonserver, one by one

# SIGHUP too: the children run in sessions of their own, so a closed terminal reaches only us
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
REPEAT_S = 0.25  # a request this soon after the first is the first one passed on again (make: < 10 ms)
_POLL_S = 0.05  # how often a thread other than the main one looks, and a stopping child is looked at


class Stop:
    """Stop requests: SIGINT/SIGTERM once `install`ed, or `set()` from code (any thread).

    `wait`, `is_set` and `set` read like `threading.Event`'s; `hurried` is the escalation."""

    def __init__(self) -> None:
        self._requests: list[tuple[int, float]] = []  # (signal number, 0 from code; time.monotonic())
        self._wake_r, self._wake_w = os.pipe()  # not inherited by children
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)  # set_wakeup_fd wants it so; a full pipe is awake anyway
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
        self._previous_fd: int | None = None
        weakref.finalize(self, _close, self._wake_r, self._wake_w)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        """The signal handler: a clock read and one list append, nothing else. It must return
        whatever the main thread was doing when the signal landed (the wake-up byte is already
        written, in C)."""
        self._requests.append((signum, time.monotonic()))

    def install(self) -> Stop:
        """Take SIGINT, SIGTERM and SIGHUP (from the main thread), until `uninstall`; one that was
        ignored when we started stays ignored (`nohup`, a background job's SIGINT)."""
        self._previous_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) != signal.SIG_IGN:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
            self._previous_fd = None

    def set(self, signum: int = 0) -> None:
        """Ask for a stop from code (a second call escalates, as a second signal does)."""
        self._requests.append((signum, time.monotonic()))
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
            os.write(self._wake_w, b"\0")

    def is_set(self) -> bool:
        return bool(self._requests)

    @property
    def hurried(self) -> int | None:
        """The request that escalated (its signal number, 0 from code), if any: the first one
        `REPEAT_S` or more after the first request."""
        requests = sorted(self._requests, key=lambda r: r[1])  # a nested handler can append first
        for signum, at in requests[1:]:
            if at - requests[0][1] >= REPEAT_S:
                return signum
        return None

    def exit_code(self) -> int:
        """0 for a graceful stop; 128 + the signal when it was cut short (130 after Ctrl-C twice)."""
        signum = self.hurried
        if signum is None:
            return 0
        return 128 + signum if signum else 1

    def wait(self, timeout_s: float) -> bool:
        """Whether a stop is asked for, waiting up to `timeout_s` for one."""
        return self._wait_for(self.is_set, timeout_s)

    def wait_hurried(self, timeout_s: float) -> bool:
        """Whether the stop has escalated, waiting up to `timeout_s` for it."""
        return self._wait_for(lambda: self.hurried is not None, timeout_s)

    def _wait_for(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        main = threading.current_thread() is threading.main_thread()
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if main:  # the only reader of the pipe: a signal's byte wakes it, whenever it lands
                select.select([self._wake_r], [], [], left)
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 512):
                        pass
            else:
                time.sleep(min(left, _POLL_S))
        return True


def ending_with_us(command: list[str]) -> list[str]:
    """`command`, run so that it is sent SIGTERM when the thread that starts it dies, even by
    SIGKILL (util-linux's `setpriv --pdeathsig`, a `prctl` kept across `exec`): a killed `trident
    run` or `trident triton` (the OOM killer, `kill -9`) leaves no server living on, unsupervised,
    on the ports the next run needs. Start children from the main thread; unchanged without
    `setpriv`."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


def terminate(process: subprocess.Popen[bytes], timeout_s: float, stop: Stop | None = None) -> int:
    """SIGTERM, then SIGKILL after `timeout_s`, or as soon as `stop` escalates; the exit code.

    Only the process itself: the rest of its group is its owner's to end."""
    if process.poll() is None and (stop is None or stop.hurried is None):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while process.poll() is None and (left := deadline - time.monotonic()) > 0:
            if stop is None:
                time.sleep(min(left, _POLL_S))
            elif stop.wait_hurried(min(left, _POLL_S)):
                break
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # stuck in the kernel: not ours to wait on
            process.wait(CLEANUP_S)
    return process.returncode if process.returncode is not None else -signal.SIGKILL


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
