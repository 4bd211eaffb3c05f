"""`trident run` heals itself (issue 20): a killed tritonserver or frontend comes back on its own, a
Triton that cannot start is given up with one line, and SIGTERM mid-restart leaves nothing behind.

Every test runs the real `trident run` on free ports, on its own copy of a small model repository;
every process it starts is found by the test's folder (in its command line or environment) and
ended, even when the test fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest

from core.settings import Settings
from core.slug import Slug
from exporter.export import ExportRequest, export_model
from exporter.triton_config import ServingOptions
from tests.helpers.stack import free_port
from trident.runtime import STUB, STUB_SHM_PREFIX

pytestmark = pytest.mark.integration
SLUG = "test/supervised/yolo11n"
UNMETERED = '{"free": [10, 100], "pro": [1000000, 1000000]}'  # `trident run`'s dev key is on "pro"
CLIENTS = 4


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, yolo11n_pt: Path) -> Path:
    """One exported model at 320 px (fast on a busy 2-core machine); each run gets a copy."""
    repo = tmp_path_factory.mktemp("supervised") / "repo"
    options = ServingOptions(execution_env=str(Settings().runtime_dir))
    export_model(
        ExportRequest(yolo11n_pt, Slug.parse(SLUG), repo, imgsz=320, visibility="public", options=options)
    )
    return repo


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, bus: Path) -> Path:
    """bus.jpg at 40%, lossless: cheap to decode, and the same boxes every time."""
    path = tmp_path_factory.mktemp("image") / "bus_small.png"
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(bus)), None, fx=0.4, fy=0.4))
    return path


def pids_of(marker: str) -> list[int]:
    """Live processes whose command line or environment mentions `marker` (a test's own folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if marker.encode() in (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes():
                found.append(int(entry.name))
    return found


def gone(pids: list[int]) -> bool:
    """Whether none of `pids` is still a live process (a zombie or a reused pid without argv is gone)."""
    return not [p for p in pids if Path(f"/proc/{p}").exists() and argv(p)]


def shm_of(pids: list[int]) -> list[str]:
    """The /dev/shm segments the API processes among `pids` name after themselves."""
    return [p.name for pid in pids for p in Path("/dev/shm").glob(f"trident-{pid}-*")]


def argv(pid: int) -> list[str]:
    try:
        return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


@dataclass
class Run:
    """One `trident run`, its folder (the marker of everything it starts) and its ports."""

    folder: Path
    process: subprocess.Popen[bytes]
    base: str
    started: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> str:
        return (self.folder / "data" / "dev-api-key").read_text().strip()

    @property
    def stderr(self) -> str:
        return (self.folder / "run.err").read_text(errors="replace")

    def child(self, name: str) -> int:
        """The pid of the live `tritonserver` or `serve` child of this run."""
        for pid in pids_of(str(self.folder)):
            args = argv(pid)
            if args and (Path(args[0]).name == name or (name == "serve" and "serve" in args[3:4])):
                return pid
        raise AssertionError(f"no {name} process in this run")

    def stubs(self, server: int) -> list[list[str]]:
        """The command lines of `server`'s Python-backend stubs."""
        return [
            args
            for pid in pids_of(str(self.folder))
            if (args := argv(pid)) and Path(args[0]).name == STUB and args[5:6] == [str(server)]
        ]

    def predict(self, image: Path, client: httpx.Client | None = None) -> httpx.Response:
        post = client.post if client is not None else httpx.post
        return post(
            f"{self.base}/api/models/{SLUG}/predict",
            headers={"Authorization": f"Bearer {self.key}"},
            files={"file": (image.name, image.read_bytes())},
            timeout=10,
        )

    def restarts(self) -> dict[str, float]:
        """`trident_process_restarts_total` by process, from the frontend's `/metrics`."""
        counts = {}
        for line in httpx.get(f"{self.base}/metrics", timeout=5).text.splitlines():
            if line.startswith("trident_process_restarts_total{"):
                labels, value = line.rsplit(" ", 1)
                counts[labels.split('"')[1]] = float(value)
        return counts

    def wait(self, what: str, ok: Any, timeout_s: float) -> float:
        """Seconds until `ok()` is true; fails with `what` and the run's output after `timeout_s`."""
        start = time.monotonic()
        while not ok():
            assert self.process.poll() is None, f"trident run exited: {self.stderr[-3000:]}"
            assert time.monotonic() - start < timeout_s, (
                f"{what} not within {timeout_s} s: {self.stderr[-3000:]}"
            )
            time.sleep(0.1)
        return time.monotonic() - start


def start_run(folder: Path, repository: Path | None, **env: str) -> Run:
    """`trident run` on free ports with its own data folder (and a copy of `repository`, if given)."""
    folder.mkdir(parents=True, exist_ok=True)
    repo = folder / "repo"
    if repository is not None:
        shutil.copytree(repository, repo)
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "TRIDENT_PORT": str(port),
        "TRIDENT_TRITON_GRPC_PORT": str(free_port()),
        "TRIDENT_TRITON_HTTP_PORT": str(free_port()),
        "TRIDENT_TRITON_METRICS_PORT": str(free_port()),
        "TRIDENT_MODEL_REPOSITORY": str(repo),
        "TRIDENT_DATA_DIR": str(folder / "data"),
        "TRIDENT_TRITON_RUNTIME_DIR": str(Settings().runtime_dir),  # reuse the installed runtime
        "TRIDENT_PLANS": UNMETERED,
        "TRIDENT_MODEL_REFRESH_S": "1",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "trident", "run"],
        env=environment,
        stdout=(folder / "run.out").open("wb"),  # files, never pipes nobody reads
        stderr=(folder / "run.err").open("wb"),
    )
    return Run(folder, process, f"http://127.0.0.1:{port}")


def end(run: Run) -> None:
    """SIGTERM the run; then SIGKILL anything of it still there (a failed test must not leak)."""
    if run.process.poll() is None:
        run.process.send_signal(signal.SIGTERM)
        try:
            run.process.wait(60)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()
    for pid in pids_of(str(run.folder)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, repository: Path, image: Path) -> Iterator[Run]:
    run = start_run(tmp_path_factory.mktemp("run"), repository)
    try:
        run.wait("a first 200", lambda: _status(run, image) == 200, timeout_s=120)
        yield run
    finally:
        end(run)


def _status(run: Run, image: Path) -> int:
    try:
        return run.predict(image).status_code
    except (httpx.TransportError, FileNotFoundError):  # not up yet, or not even its key yet
        return 0


@dataclass
class Outcome:
    started: float
    ended: float
    status: int  # 0: a transport error (refused, reset, timed out)
    detail: str  # the error, or whether the answer differed from the expected one
    retry_after: str | None = None


def hammer(run: Run, image: Path, expected: Any, stop: threading.Event, out: list[Outcome]) -> None:
    """One client: predicts back to back until `stop`, recording each outcome."""
    with httpx.Client() as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                r = run.predict(image, client)
            except httpx.TransportError as exc:
                out.append(Outcome(started, time.monotonic(), 0, repr(exc)))
                continue
            same = r.status_code != 200 or r.json()["predictions"] == expected
            out.append(
                Outcome(
                    started,
                    time.monotonic(),
                    r.status_code,
                    "" if same else "wrong answer",
                    r.headers.get("Retry-After"),
                )
            )
            time.sleep(0.02)


def test_killed_tritonserver_under_load_gives_fast_503s_then_correct_answers_with_no_action(
    running: Run, image: Path
) -> None:
    expected = running.predict(image).json()["predictions"]
    assert expected, "the model must find something for the comparison to mean anything"
    server = running.child("tritonserver")
    stubs = running.stubs(server)
    regions = {a for args in stubs for a in args if a.startswith(STUB_SHM_PREFIX)}
    assert stubs and regions
    before = running.restarts()

    stop = threading.Event()
    outcomes: list[list[Outcome]] = [[] for _ in range(CLIENTS)]
    clients = [
        threading.Thread(target=hammer, args=(running, image, expected, stop, out)) for out in outcomes
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(1.0)
        killed = time.monotonic()
        os.kill(server, signal.SIGKILL)
        readyz_down = livez_meanwhile = None
        while time.monotonic() - killed < 40:  # /readyz says not ready, /livez stays fine
            if readyz_down is None and httpx.get(f"{running.base}/readyz", timeout=5).status_code == 503:
                readyz_down = time.monotonic() - killed
                livez_meanwhile = httpx.get(f"{running.base}/livez", timeout=5).status_code
            done = [o for out in outcomes for o in out if o.started > killed and o.status == 200]
            if done and time.monotonic() - min(o.ended for o in done) > 3:
                break  # served again, and for 3 s since
            time.sleep(0.1)
    finally:
        stop.set()
        for client in clients:
            client.join(30)

    every = sorted((o for out in outcomes for o in out), key=lambda o: o.started)
    assert not [o for o in every if o.status == 0], "a refused connection or a hang (10 s timeout)"
    assert {o.status for o in every} <= {200, 503}, {o.status for o in every}
    assert all(o.retry_after and o.retry_after.isdigit() for o in every if o.status == 503)
    slowest = max(o.ended - o.started for o in every)
    first_503 = min(o.ended for o in every if o.status == 503) - killed
    first_200 = min(o.ended for o in every if o.started > killed and o.status == 200) - killed
    recovered = killed + first_200
    later = [o for o in every if o.started >= recovered]
    assert readyz_down is not None and livez_meanwhile == 200
    print(
        f"\nkill -9 tritonserver under {CLIENTS} clients: first 503 after {first_503:.2f} s, /readyz 503 "
        f"after {readyz_down:.2f} s, 200 again after {first_200:.1f} s, slowest answer {slowest:.2f} s, "
        f"{len(every)} requests ({sum(o.status == 503 for o in every)} 503s), {len(later)} after recovery"
    )
    assert first_503 < 1.0
    assert slowest < 5.0, "a request hung"
    assert first_200 < 30
    assert later and all(o.status == 200 and not o.detail for o in later), "an error or a wrong answer"
    assert not [o for o in every if o.detail], "a wrong answer"

    after = running.restarts()
    assert after["tritonserver"] == before["tritonserver"] + 1
    assert after["frontend"] == before["frontend"]
    assert running.stubs(server) == [], "the dead server's Python-backend stubs are still running"
    assert not [r for r in regions if (Path("/dev/shm") / r).exists()], "its shared memory is still there"
    assert f"tritonserver (pid {server}) was killed by SIGKILL; restarting it in 1 s" in running.stderr


def test_killed_frontend_answers_livez_again_within_10_s_and_triton_keeps_running(
    running: Run, image: Path
) -> None:
    server, frontend = running.child("tritonserver"), running.child("serve")
    before = running.restarts()
    os.kill(frontend, signal.SIGKILL)
    back = running.wait("/livez", lambda: _live(running), timeout_s=10)
    print(f"\nkill -9 frontend: /livez answers again after {back:.1f} s")
    assert running.child("tritonserver") == server, "Triton was restarted too"
    assert running.child("serve") != frontend
    after = running.restarts()
    assert after == {**before, "frontend": before["frontend"] + 1}
    running.wait("a 200", lambda: _status(running, image) == 200, timeout_s=30)
    assert f"frontend (pid {frontend}) was killed by SIGKILL" in running.stderr


def test_sigterm_after_a_triton_crash_and_restart_exits_0_leaving_no_process_or_shared_memory(
    running: Run, image: Path
) -> None:
    """Issue 31's scenario: traffic, tritonserver killed and healed by `trident run`, then SIGTERM
    (what Ctrl-C, `docker stop` and `systemctl stop` send). It ends the run the tests above share,
    so it stays the last of them."""
    old = running.child("tritonserver")
    old_regions = {a for args in running.stubs(old) for a in args if a.startswith(STUB_SHM_PREFIX)}
    os.kill(old, signal.SIGKILL)
    running.wait(
        "a 200 from a new tritonserver",
        lambda: _restarted(running, old) and _status(running, image) == 200,
        timeout_s=60,
    )
    server = running.child("tritonserver")
    regions = {a for args in running.stubs(server) for a in args if a.startswith(STUB_SHM_PREFIX)}
    tree = pids_of(str(running.folder))
    assert shm_of(tree), "the API's segments"
    assert old_regions and regions, "stub regions of both servers"
    sigterm_leaves_nothing(
        running, running.folder, tree, old_regions | regions, "after a Triton crash and restart"
    )


def _live(run: Run) -> bool:
    try:
        return httpx.get(f"{run.base}/livez", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_sigterm_during_a_triton_restart_exits_cleanly_leaving_no_process(
    tmp_path: Path, repository: Path, image: Path
) -> None:
    run = start_run(tmp_path, repository)
    try:
        run.wait("a first 200", lambda: _status(run, image) == 200, timeout_s=120)
        server = run.child("tritonserver")
        regions = {a for args in run.stubs(server) for a in args if a.startswith(STUB_SHM_PREFIX)}
        tree = pids_of(str(tmp_path))
        assert len(tree) >= 3, "tritonserver, its stub, the frontend"
        assert shm_of(tree), "the API's shared memory with Triton"
        os.kill(server, signal.SIGKILL)
        run.wait("a new tritonserver", lambda: _restarted(run, server), timeout_s=10)
        sigterm_leaves_nothing(run, tmp_path, tree, regions, "during a Triton restart")
    finally:
        end(run)


def sigterm_leaves_nothing(run: Run, folder: Path, tree: list[int], regions: set[str], when: str) -> None:
    """SIGTERM to `trident run`: exit 0 and "stopped", no process of `tree` (or under `folder`)
    left, no stub's shared-memory region in `regions`, no segment of the API's."""
    asked = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    code = run.process.wait(60)
    print(f"\nSIGTERM {when}: exit code {code} after {time.monotonic() - asked:.1f} s")
    assert code == 0, run.stderr[-3000:]
    assert run.stderr.rstrip().endswith("stopped")
    left = pids_of(str(folder))
    assert left == [], [argv(p) for p in left]
    assert gone(tree), "a process outlived the run"
    assert not [r for r in regions if (Path("/dev/shm") / r).exists()], "a stub's region outlived it"
    assert shm_of(tree) == [], "the API's segments outlived it"


def _restarted(run: Run, old: int) -> bool:
    try:
        return run.child("tritonserver") != old
    except AssertionError:
        return False


def test_a_triton_that_cannot_start_is_given_up_after_the_stated_tries_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "repo").write_text("not a folder")
    run = start_run(tmp_path, None, TRIDENT_RESTART_LIMIT="2", TRIDENT_RESTART_BACKOFF_MAX_S="1")
    try:
        code = run.process.wait(120)
        took = time.monotonic() - run.started
    finally:
        end(run)
    lines = run.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    print(f"\nunstartable Triton: gave up after {took:.1f} s: {errors}")
    assert code == 1
    assert len(errors) == 1
    log = tmp_path / "data" / "logs" / "tritonserver.log"
    assert errors[0].startswith("error: tritonserver failed 3 times")
    assert "at most 2 restarts" in errors[0] and errors[0].endswith(f"Its last log lines are in {log}")
    assert len([line for line in lines if "restarting it in" in line]) == 2
    assert log.read_text().count("repository path is not a valid directory") == 3
    assert pids_of(str(tmp_path)) == []
