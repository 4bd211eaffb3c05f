"""Stop means stop (issue 31), on the real commands: two quick Ctrl-Cs end a `trident run` whose API
is still draining a request, and `trident triton` stops on SIGTERM, or at once on a second Ctrl-C.

Both run without models (an unusable repository for `trident run`, whose Triton then restarts in a
loop; an empty one for `trident triton`), so they cost seconds, not a model load. The graceful
SIGTERM of a `trident run` that went through a Triton crash and restart is in test_supervisor.py,
on the run those tests share."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.helpers.stack import free_port
from tests.integration.test_supervisor import argv, end, gone, pids_of, shm_of, start_run
from trident.stopping import REPEAT_S

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def stalled_upload(base: str, key: str) -> Iterator[socket.socket]:
    """A request whose body never finishes arriving: the API's graceful shutdown waits for it (up to
    its drain time), as for a slow client's upload."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"POST /api/api-keys HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{".encode()
        )
        yield sock


def test_two_quick_ctrl_cs_end_a_draining_trident_run_non_zero_within_5_s(tmp_path: Path) -> None:
    (tmp_path / "repo").write_text("not a folder")  # no model to load: Triton restarts in a loop
    run = start_run(tmp_path, None, TRIDENT_RESTART_LIMIT="100")
    try:
        run.wait("/livez", lambda: _live(run.base), timeout_s=60)
        tree = pids_of(str(tmp_path))
        assert [p for p in tree if "serve" in argv(p)], "the API"
        with stalled_upload(run.base, run.key):
            time.sleep(0.5)  # the request is in (its headers read)
            first = time.monotonic()
            run.process.send_signal(signal.SIGINT)
            time.sleep(1.0)
            draining = run.process.poll() is None
            run.process.send_signal(signal.SIGINT)
            code = run.process.wait(30)
            took = time.monotonic() - first
        left = pids_of(str(tmp_path))
    finally:
        end(run)
    print(f"\ntwo Ctrl-Cs 1 s apart, the API draining: exit code {code} {took:.2f} s after the first")
    assert draining, "one Ctrl-C did not wait for the request in flight: " + run.stderr[-2000:]
    assert code == 128 + signal.SIGINT, run.stderr[-3000:]
    assert took < 5.0
    assert "asked to stop twice" in run.stderr
    assert left == [], [argv(p) for p in left]
    assert gone(tree), "a process outlived the run"
    assert shm_of(tree) == []


def _live(base: str, path: str = "/livez") -> bool:
    try:
        return httpx.get(f"{base}{path}", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def start_triton_command(folder: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`trident triton` on an empty repository and free ports; its stderr's path."""
    (folder / "repo").mkdir(parents=True)
    err = folder / "triton.err"
    environment = {
        **os.environ,
        "TRIDENT_MODEL_REPOSITORY": str(folder / "repo"),
        "TRIDENT_DATA_DIR": str(folder / "data"),
        "TRIDENT_TRITON_RUNTIME_DIR": str(Settings().runtime_dir),
        "TRIDENT_TRITON_GRPC_PORT": str(free_port()),
        "TRIDENT_TRITON_HTTP_PORT": str(free_port()),
        "TRIDENT_TRITON_METRICS_PORT": str(free_port()),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "trident", "triton"], env=environment, stderr=err.open("wb")
    )
    deadline = time.monotonic() + 60
    while "Triton ready" not in err.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, err.read_text()[-3000:]
        time.sleep(0.1)
    return process, err


@pytest.mark.parametrize(
    ("signals", "expected"),
    [([signal.SIGTERM], 0), ([signal.SIGINT, signal.SIGINT], 128 + signal.SIGINT)],
    ids=["sigterm", "two-ctrl-cs"],  # an empty Triton stops in under a second: this is the wiring
)
def test_trident_triton_stops_on_sigterm_and_at_once_on_a_second_ctrl_c(
    tmp_path: Path, signals: list[signal.Signals], expected: int
) -> None:
    process, err = start_triton_command(tmp_path)
    try:
        tree = pids_of(str(tmp_path))
        assert [p for p in tree if argv(p) and Path(argv(p)[0]).name == "tritonserver"]
        sent = time.monotonic()
        for n, signum in enumerate(signals):
            if n:
                time.sleep(2 * REPEAT_S)
            process.send_signal(signum)
        code = process.wait(60)
        took = time.monotonic() - sent
        left = pids_of(str(tmp_path))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in pids_of(str(tmp_path)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    print(f"\ntrident triton, {'+'.join(s.name for s in signals)}: exit code {code} after {took:.2f} s")
    # the status a shell shows: a second Ctrl-C that lands while Python is already finalizing (its
    # handlers reset) ends the process by SIGINT, which the shell reports as 130 too
    shown = 128 - code if code < 0 else code
    assert shown == expected, err.read_text()[-3000:]
    assert took < 5.0
    assert left == [], [argv(p) for p in left]


@pytest.mark.parametrize("command", ["run", "triton"])
def test_a_killed_trident_takes_its_servers_with_it(tmp_path: Path, command: str) -> None:
    """`kill -9` of `trident run` or `trident triton` (the OOM killer, an operator's last resort)
    leaves nothing serving: its Triton and API end with it (their parent-death signal asks them to
    stop), instead of living on unsupervised on the ports the next run needs."""
    if command == "run":
        models = tmp_path / "models" / "unloadable"  # a model, so no demo export; it fails to load
        models.mkdir(parents=True)
        (models / "config.pbtxt").write_text('backend: "onnxruntime"\n')  # no version folder
        run = start_run(tmp_path / "run", models.parent)
        process = run.process
        run.wait("/readyz (Triton and the API)", lambda: _live(run.base, "/readyz"), timeout_s=90)
    else:
        process, _ = start_triton_command(tmp_path)
    try:
        tree = pids_of(str(tmp_path))
        assert [p for p in tree if argv(p) and Path(argv(p)[0]).name == "tritonserver"]
        process.kill()
        process.wait()
        killed = time.monotonic()
        while not gone(tree) and time.monotonic() < killed + 30:
            time.sleep(0.1)
        left = [argv(p) for p in tree if not gone([p])]
        took = time.monotonic() - killed
        print(f"\ntrident {command} killed: its {len(tree)} processes gone in {took:.2f} s")
    finally:
        for pid in pids_of(str(tmp_path)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert left == []
    assert shm_of(tree) == []
