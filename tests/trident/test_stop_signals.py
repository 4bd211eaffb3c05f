"""Stop means stop (issue 31): Ctrl-C and SIGTERM end `trident run`'s supervisor wherever they land,
a second one kills at once, and the same signal passed on twice (GNU make) is still one stop.

Everything runs in subprocesses with stand-in children (`sh` and `sleep`, not Triton), each tagged
with a marker in its environment, so a leftover is found by the marker and a hang is a timeout."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from trident.stopping import CHILD_STOP_S, REPEAT_S, Stop

ROOT = Path(__file__).resolve().parents[2]
MARKER = "TRIDENT_STOP_TEST_MARKER"

# The trace harness: a signal raised at the n-th line the stop mechanism's own code runs, while the
# main thread waits in a loop as the supervisor does. `event` is main's handler before issue 31
# (`threading.Event.set()` in the handler); `stop` is trident.stopping.
TRACED = textwrap.dedent(
    """
    import signal, sys, threading, time

    def mechanism(kind):
        if kind == "event":  # main's trident/cli.py `_stop_event_on_signals`, as it was
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda signum, frame: stop.set())
            return stop, threading.__file__
        import trident.stopping
        return trident.stopping.Stop().install(), trident.stopping.__file__

    kind, lines = sys.argv[1], int(sys.argv[2])
    for n in range(1, lines + 1):
        stop, source = mechanism(kind)
        seen, calls, raised_in = [0], [0], [None]

        def tracer(frame, event, arg):
            if frame.f_code.co_filename != source:
                return None
            if event == "line":
                seen[0] += 1
                if seen[0] == n:  # the handler runs right here, inside the traced frame
                    raised_in[0] = calls[0]
                    signal.raise_signal(signal.SIGTERM)
            return tracer

        started = time.monotonic()
        sys.settrace(tracer)
        while True:
            calls[0] += 1
            if stop.wait(0.05):
                break
        sys.settrace(None)
        print(n, raised_in[0], calls[0], round(time.monotonic() - started, 3), flush=True)
    print("done", flush=True)
    """
)


def traced(kind: str, lines: int, timeout_s: float) -> tuple[bool, str]:
    """Run the trace harness: whether it finished within `timeout_s` (else it is SIGKILLed: a
    deadlocked handler ignores SIGTERM), and what it printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", TRACED, kind, str(lines)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        out, _ = process.communicate(timeout=timeout_s)
        return process.returncode == 0, out
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        return False, out


def test_a_signal_at_any_line_of_the_wait_is_handled_at_once_and_ends_the_wait() -> None:
    finished, out = traced("stop", lines=40, timeout_s=20)
    assert finished and out.endswith("done\n"), out
    rows = [[float(v) for v in line.split()] for line in out.splitlines()[:-1]]
    assert [int(r[0]) for r in rows] == list(range(1, 41))
    for n, raised_in, calls, took in rows:
        # the wait the signal landed in returns True, or (landing after its last look) the next one
        assert calls - raised_in <= 1, f"signal at line {n:.0f}: a wake-up was lost"
        assert took < 2.0, f"signal at line {n:.0f}: {took} s"


def test_negative_control_the_old_handler_deadlocks_on_the_events_own_lock() -> None:
    """The same harness against main's handler before issue 31 hangs (SIGKILLed after 3 s) at the
    first line where `Event.wait` holds its lock."""
    finished, out = traced("event", lines=40, timeout_s=3)
    print(f"\nold handler: finished {finished}; the lines it got past (n, wait call, calls, s): {out!r}")
    assert not finished and "done" not in out
    assert out.startswith("1 1 1 "), "it does run: the harness itself works"


def test_the_stop_mechanism_holds_no_lock_a_handler_could_wait_for() -> None:
    kinds = (type(threading.Lock()), type(threading.RLock()), threading.Condition, threading.Event)
    assert [name for name, value in vars(Stop()).items() if isinstance(value, kinds)] == []


# The stand-in `trident run`: the same Stop, Supervisor and exit code as trident/cli.py's `run`, with
# `sh` children: one drains for 0.2 s on SIGTERM, one keeps a grandchild in its group (as uvicorn
# keeps workers) and one crashes now and then, so signals also land during restarts.
STAND_IN = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from trident.stopping import Stop
    from trident.supervisor import Child, RestartPolicy, Supervisor

    folder, drain, stop_s = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    stop = Stop().install()
    os.write(1, b"ready\\n")
    children = [
        Child("tritonserver", ["sh", "-c", f"trap '{drain}' TERM; sleep 60 & wait; wait"],
              folder / "triton.log", stop_timeout_s=stop_s),
        Child("frontend", ["sh", "-c", f"trap '{drain}' TERM; sleep 60 & sleep 60 & wait; wait"],
              folder / "frontend.log", stop_timeout_s=stop_s),
        Child("crasher", ["sh", "-c", "sleep 0.$(($$ % 3)); exit 3"], folder / "crasher.log"),
    ]
    policy = RestartPolicy(limit=1000, window_s=60, backoff_max_s=0.05)
    Supervisor(children, policy, say=lambda line: None, poll_s=0.01).run(stop)
    sys.exit(stop.exit_code())
    """
)
DRAIN = "sleep 0.1; exit 0"  # a graceful stop takes a moment
NO_DRAIN = ""  # `trap '' TERM`: SIGTERM is ignored, as by a frontend draining a long request


def marked(marker: str) -> list[int]:
    """Live processes (not zombies) with `marker` in their environment."""
    found = []
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
    return found


@dataclass
class StandIn:
    process: subprocess.Popen[bytes]
    marker: str

    def wait_for_children(self, timeout_s: float = 20) -> None:
        """Until both long-lived children run, their TERM traps set (their 3 `sleep 60` are up)."""
        deadline = time.monotonic() + timeout_s
        while sum(_argv(pid) == ["sleep", "60"] for pid in marked(self.marker)) < 3:
            assert time.monotonic() < deadline, "the stand-in's children did not start"
            time.sleep(0.02)

    def kill_all(self) -> None:
        """A failed test must not leak: SIGKILL the stand-in and whatever carries its marker."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        for pid in marked(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _argv(pid: int) -> list[str]:
    try:
        return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def start_stand_in(
    folder: Path, drain: str = DRAIN, stop_s: float = 5.0, prefix: tuple[str, ...] = ()
) -> StandIn:
    """Start the stand-in (under `prefix`, such as nohup) and return once its handlers are installed."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = uuid.uuid4().hex
    with (folder / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [*prefix, sys.executable, "-S", "-c", STAND_IN, str(folder), drain, str(stop_s)],
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), MARKER: marker},
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    return StandIn(process, marker)


@contextlib.contextmanager
def cpu_load(cores: int) -> Iterator[None]:
    """Busy loops on `cores` cores, stopped by their own pids."""
    burners = [subprocess.Popen([sys.executable, "-S", "-c", "while True: pass"]) for _ in range(cores)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


@dataclass
class Outcome:
    signals: list[str]
    code: int | None  # None: still running after the bound
    took: float  # from the first signal to the exit
    left: list[int]


def one_stop(folder: Path, seed: int, bound_s: float) -> Outcome:
    """One stand-in, one SIGTERM or SIGINT at a random moment (in every 5th run twice at once, as
    `make` passes a SIGTERM on), then its exit and what is left."""
    rng = random.Random(seed)
    signum = rng.choice([signal.SIGTERM, signal.SIGINT])
    twice = seed % 5 == 0
    stand_in = start_stand_in(folder)
    try:
        time.sleep(rng.uniform(0, 0.3))  # while children start, run, crash and restart
        sent = time.monotonic()
        stand_in.process.send_signal(signum)
        if twice:
            stand_in.process.send_signal(signum)
        try:
            code: int | None = stand_in.process.wait(bound_s)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - sent
        left = marked(stand_in.marker)
    finally:
        stand_in.kill_all()
    return Outcome([signum.name] * (2 if twice else 1), code, took, left)


STRESS_RUNS = 200
STRESS_BOUND_S = 10.0  # 2 children x 5 s stop timeout: never reached when a stop works (a drain is 0.1 s)


def test_200_signals_at_random_moments_under_cpu_load_each_stop_everything_with_exit_0(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    with cpu_load(cores=2), ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(
            pool.map(lambda seed: one_stop(tmp_path / str(seed), seed, STRESS_BOUND_S), range(STRESS_RUNS))
        )
    wall = time.monotonic() - started
    bad = [(seed, o) for seed, o in enumerate(outcomes) if o.code != 0 or o.left]
    takes = sorted(o.took for o in outcomes)
    print(
        f"\n{STRESS_RUNS} stops ({sum(o.signals[0] == 'SIGTERM' for o in outcomes)} SIGTERM, "
        f"{sum(len(o.signals) == 2 for o in outcomes)} sent twice at once) under 2 busy loops in "
        f"{wall:.1f} s: exit codes {sorted({o.code for o in outcomes}, key=str)}, stop took median "
        f"{takes[len(takes) // 2]:.2f} s, max {takes[-1]:.2f} s (bound {STRESS_BOUND_S:.0f} s)"
    )
    assert not bad, bad[:5]
    assert takes[-1] < STRESS_BOUND_S


def test_a_second_ctrl_c_kills_a_draining_run_and_exits_non_zero_within_5_s(tmp_path: Path) -> None:
    # children that ignore SIGTERM, stopped with the real timeout: one Ctrl-C alone waits 40 s each
    stand_in = start_stand_in(tmp_path, drain=NO_DRAIN, stop_s=CHILD_STOP_S)
    try:
        stand_in.wait_for_children()
        first = time.monotonic()
        stand_in.process.send_signal(signal.SIGINT)
        time.sleep(2 * REPEAT_S)  # a quick second press, yet no repeat of the first
        assert stand_in.process.poll() is None, "one Ctrl-C: still draining"
        stand_in.process.send_signal(signal.SIGINT)
        code = stand_in.process.wait(10)
        took = time.monotonic() - first
        left = marked(stand_in.marker)
    finally:
        stand_in.kill_all()
    print(f"\ntwo Ctrl-Cs {2 * REPEAT_S} s apart: exit code {code} {took:.2f} s after the first")
    assert code == 128 + signal.SIGINT
    assert took < 5.0
    assert left == []


def test_a_signal_passed_on_twice_at_once_as_make_does_is_one_graceful_stop(tmp_path: Path) -> None:
    stand_in = start_stand_in(tmp_path, drain="sleep 1; exit 0")
    try:
        stand_in.wait_for_children()
        sent = time.monotonic()
        stand_in.process.send_signal(signal.SIGTERM)
        stand_in.process.send_signal(signal.SIGTERM)  # make's copy, a few ms later at most
        code = stand_in.process.wait(20)
        took = time.monotonic() - sent
        left = marked(stand_in.marker)
    finally:
        stand_in.kill_all()
    assert code == 0, "taken for a second request: escalated"
    assert took >= 2 * 1.0 - 0.1, "the children's 1 s drains were cut short"
    assert left == []


def test_a_closed_terminal_stops_gracefully_unless_started_under_nohup(tmp_path: Path) -> None:
    """SIGHUP reaches only `trident run` (its children have sessions of their own): it stops them.
    Under nohup it stays ignored, and the run goes on until a SIGTERM."""
    plain = start_stand_in(tmp_path / "plain")
    nohup = start_stand_in(tmp_path / "nohup", prefix=("nohup",))
    try:
        plain.wait_for_children()
        nohup.wait_for_children()
        plain.process.send_signal(signal.SIGHUP)
        nohup.process.send_signal(signal.SIGHUP)
        plain_code = plain.process.wait(10)
        time.sleep(0.5)
        nohup_alive = nohup.process.poll() is None
        nohup.process.send_signal(signal.SIGTERM)
        nohup_code = nohup.process.wait(10)
        left = marked(plain.marker) + marked(nohup.marker)
    finally:
        plain.kill_all()
        nohup.kill_all()
    assert plain_code == 0 and left == []
    assert nohup_alive and nohup_code == 0
