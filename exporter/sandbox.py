"""Open an untrusted checkpoint only inside a `bubblewrap` sandbox, and take back only its ONNX.

A `.pt` is a pickle: loading it runs whatever code it names. The worker never loads one itself.
It copies the checkpoint into a scratch folder and runs `python -m exporter.sandboxed` there
(the same `export_model`, checkpoint check, ONNX export and parity gate as `trident export`)
under `bwrap`:

- its own unprivileged uid (`setpriv` when the worker is root, else a user namespace);
- no network (`--unshare-net`: a loopback with nothing on it), its own pid, ipc and uts namespaces,
  killed with the worker (`--die-with-parent`);
- a view of the file system made of read-only system folders, the Python install and virtualenv
  read-only, the project's build-time packages read-only, a private `/tmp`, and the scratch folder
  (the only writable place). The key store, secrets, the model repository, other models and the
  rest of the disk are simply not there;
- limits (`prlimit`): address space, CPU seconds, processes, file size, open files per process;
  where the cgroup file system is writable (root, cgroup v1 or v2) also a cgroup of its own below
  this process's, limiting the memory and tasks of the whole sandbox together (a fork bomb of
  processes that each stay under their own limit still fits in it) and the cores it may use at
  once (a CPU quota: a checkpoint that keeps every core busy until its wall time leaves the rest of
  the machine to serving), through which every process left is killed at the end; and a wall time
  after which the whole sandbox is killed.

What comes back is untrusted too: a JSON report (size-limited, typed) and one ONNX file, read
without following links, refused if it points at external data. The worker then runs the parity
gate's decoded check again itself, on that ONNX, against the reference results the report carries
(`exporter.parity.compare_results`); the configs and the Triton backend beside it are written by
the worker (`exporter.export.assemble`), never taken from the sandbox.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from exporter.errors import ExportError
from exporter.parity import Reference
from exporter.raw_parity import RawParity

__all__ = ["Limits", "SandboxOutput", "export_in_sandbox", "sandbox_argv", "sandbox_problem"]

log = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "exporter", "pipeline", "postprocess")  # what the exporter imports of ours
SYSTEM_DIRS = (
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/os-release",
)
REPORT = "report.json"
MAX_REPORT_BYTES = 64 * 1024
INSIDE = "/scratch"


@dataclass(frozen=True)
class Limits:
    memory_bytes: int  # address space of each process
    cpu_s: int
    processes: int  # of the sandbox's uid
    timeout_s: float  # wall time of the whole run
    file_bytes: int  # largest file it may write
    cpus: float  # cores the whole sandbox may use at once (a CPU quota, with its cgroup)
    uid: int = 64999  # its own: no other process runs as it


@dataclass(frozen=True)
class SandboxOutput:
    onnx: Path  # a copy outside the sandbox's reach
    task: str
    raw: RawParity  # the raw check's figures (it needs the PyTorch model, so it runs inside)
    reference: Reference | None  # what `YOLO(weights).predict()` found (None for map tasks)


def _python_roots() -> list[Path]:
    """The interpreter's install and the virtualenv (read-only inside, at the same paths)."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    return sorted(roots)


def sandbox_argv(scratch: Path, limits: Limits, inner: list[str]) -> list[str]:
    """The `bwrap` command line that runs `inner` in the sandbox with `scratch` at `/scratch`."""
    argv = ["bwrap", "--die-with-parent", "--new-session", "--clearenv", "--perms", "0755", "--dir", "/etc"]
    argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    root = os.geteuid() == 0
    if not root:
        argv += ["--unshare-user", "--uid", str(limits.uid), "--gid", str(limits.uid)]
    for folder in SYSTEM_DIRS:
        if Path(folder).exists():
            argv += ["--ro-bind", folder, folder]
    # the folders above the mount points, readable by the sandbox's uid (bwrap makes them 0700)
    for parent in sorted({str(p) for r in _python_roots() for p in r.parents if str(p) != "/"} | {"/app"}):
        argv += ["--perms", "0755", "--dir", parent]
    for root_dir in _python_roots():
        argv += ["--ro-bind", str(root_dir), str(root_dir)]
    for package in PACKAGES:
        argv += ["--ro-bind", str(PROJECT / package), f"/app/{package}"]
    argv += ["--bind", str(scratch), INSIDE, "--chdir", INSIDE]
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]  # noqa: S108 (the sandbox's own, empty)
    env = {
        "PATH": f"{Path(sys.prefix).resolve() / 'bin'}:/usr/bin:/bin",
        "HOME": INSIDE,
        "PYTHONPATH": "/app",
        "PYTHONDONTWRITEBYTECODE": "1",
        "YOLO_CONFIG_DIR": f"{INSIDE}/config",
        "YOLO_OFFLINE": "1",
        "MPLCONFIGDIR": f"{INSIDE}/config",
        "OMP_NUM_THREADS": "2",
    }
    for name, value in env.items():
        argv += ["--setenv", name, value]
    argv += ["prlimit", f"--as={limits.memory_bytes}", f"--cpu={limits.cpu_s}"]
    argv += [f"--nproc={limits.processes}", f"--fsize={limits.file_bytes}", "--nofile=1024", "--core=0", "--"]
    if root:  # bwrap keeps root's uid without a user namespace: drop to the sandbox's own
        argv += ["setpriv", f"--reuid={limits.uid}", f"--regid={limits.uid}", "--clear-groups"]
        argv += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return argv + inner


def _python() -> str:
    """The virtualenv's interpreter at its real path (the path the sandbox mounts)."""
    return str(Path(sys.prefix).resolve() / "bin" / "python")


def sandbox_problem(limits: Limits, timeout_s: float = 60) -> str | None:
    """Why no sandbox opens here, or None when one does: a Python that does nothing, run under the
    same `bwrap` command line as an export. A container without what bubblewrap needs (an unmasked
    `/proc`, user namespaces) says so before any upload comes (`trident worker --check`)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    with tempfile.TemporaryDirectory(prefix="trident-sandbox-check-") as scratch:
        Path(scratch).chmod(0o755)  # the sandbox's own uid changes into it
        argv = sandbox_argv(Path(scratch), limits, [_python(), "-c", "pass"])
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return f"a sandbox did not open within {timeout_s:g} s"
    said = (done.stderr + done.stdout).decode(errors="replace").strip()
    return None if done.returncode == 0 else said[-500:] or f"bwrap exited with status {done.returncode}"


CGROUPS = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000  # the quota's period: `cpus` of it may be used in each


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup per v1 controller (and "" for v2), from /proc/self/cgroup."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


STALE_S = 60  # an empty sandbox cgroup this old was left by a worker that was killed


def _remove_stale(parent: Path) -> None:
    """Empty sandbox cgroups a killed worker left (one with processes cannot be removed)."""
    for folder in parent.glob("trident-sandbox-*"):
        with contextlib.suppress(OSError):
            if time.time() - folder.stat().st_mtime > STALE_S:
                folder.rmdir()


class Cgroup:
    """The sandbox's own cgroup(s): total memory and tasks, and the end of every process in it."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, name: str, limits: Limits) -> Cgroup | None:
        """None where cgroups cannot be made here (the per-process limits then stand alone). The
        CPU quota is made where the `cpu` controller can be had, and is not a reason to give up
        the memory and task limits where it cannot."""
        made: list[Path] = []
        groups: list[tuple[Path, dict[str, int | str], bool]]  # folder, values, required
        quota = int(limits.cpus * CPU_PERIOD_US)
        try:
            own = _own_cgroups()
            if (CGROUPS / "cgroup.controllers").exists():  # v2: one tree
                folder = CGROUPS / own[""].lstrip("/") / name
                groups = [
                    (folder, {"memory.max": limits.memory_bytes, "pids.max": limits.processes}, True),
                    (folder, {"cpu.max": f"{quota} {CPU_PERIOD_US}"}, False),
                ]
            else:
                groups = [
                    (
                        CGROUPS / "memory" / own["memory"].lstrip("/") / name,
                        {"memory.limit_in_bytes": limits.memory_bytes},
                        True,
                    ),
                    (CGROUPS / "pids" / own["pids"].lstrip("/") / name, {"pids.max": limits.processes}, True),
                    (
                        CGROUPS / "cpu" / own.get("cpu", "/").lstrip("/") / name,
                        {"cpu.cfs_period_us": CPU_PERIOD_US, "cpu.cfs_quota_us": quota},
                        False,
                    ),
                ]
            for folder, values, required in groups:
                try:
                    if folder not in made:
                        _remove_stale(folder.parent)
                        folder.mkdir()
                        made.append(folder)
                    for file, value in values.items():
                        (folder / file).write_text(str(value))
                except OSError:
                    if required:
                        raise
                    log.warning("the sandbox gets no CPU quota here: no writable cpu controller")
        except (OSError, KeyError, ValueError):
            cls(made).close()
            return None
        return cls(made)

    def enter(self) -> None:
        """Move the calling process in (run in the child before it execs `bwrap`)."""
        for folder in self.dirs:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        """Kill whatever is still in it, then remove it."""
        for folder in self.dirs:
            for _ in range(100):
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.05)
            with contextlib.suppress(OSError):
                folder.rmdir()


def _read_report(scratch: Path) -> dict[str, Any]:
    path = scratch / "out" / REPORT
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_REPORT_BYTES + 1)
    try:
        report = json.loads(raw) if len(raw) <= MAX_REPORT_BYTES else {}
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def _take_onnx(scratch: Path, relative: object, target: Path) -> Path:
    """Copy the sandbox's ONNX to `target`: a regular file inside the scratch folder, no link
    followed, no external data (its tensors would be read from paths the sandbox chose)."""
    if not isinstance(relative, str) or relative.startswith("/") or ".." in Path(relative).parts:
        raise ExportError("the sandboxed export named no ONNX file inside its scratch folder")
    source = scratch / relative
    if source.resolve() != source.absolute() or not source.resolve().is_relative_to(scratch.resolve()):
        raise ExportError("the sandboxed export's ONNX is behind a link; refused")
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f, target.open("wb") as out:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ExportError("the sandboxed export's ONNX is not a regular file; refused")
        shutil.copyfileobj(f, out)
    try:
        proto = onnx.load(str(target), load_external_data=False)
    except Exception as exc:  # protobuf raises several types on a broken file
        raise ExportError(f"the sandboxed export's ONNX does not parse: {type(exc).__name__}") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise ExportError("the sandboxed export's ONNX refers to external data; refused")
    return target


def export_in_sandbox(
    checkpoint: Path, scratch: Path, limits: Limits, target: Path, nms: bool | None = None
) -> SandboxOutput:
    """Export `checkpoint` in the sandbox; the ONNX lands at `target`. `ExportError` with the
    sandbox's own reason (or what stopped it) when it fails; nothing outside `scratch` and
    `target` is written."""
    if shutil.which("bwrap") is None:
        raise ExportError(
            "bubblewrap (bwrap) is not installed: uploaded checkpoints are only opened in its sandbox"
        )
    (scratch / "in").mkdir(parents=True)
    (scratch / "out").mkdir()
    (scratch / "config").mkdir()
    shutil.copyfile(checkpoint, scratch / "in" / "model.pt")
    if os.geteuid() == 0:
        for path in (scratch, *scratch.rglob("*")):
            os.chown(path, limits.uid, limits.uid)
    inner = [_python(), "-m", "exporter.sandboxed", f"{INSIDE}/in/model.pt", f"{INSIDE}/out"]
    if nms is not None:
        inner.append(f"--nms={'true' if nms else 'false'}")
    cgroup = Cgroup.create(f"trident-sandbox-{scratch.parent.name}", limits)
    argv = sandbox_argv(scratch, limits, inner)
    sandbox_log = scratch.parent / "sandbox.log"  # its output, outside its reach (under its file limit)
    try:
        with (
            sandbox_log.open("wb") as out,
            subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=cgroup.enter if cgroup is not None else None,
            ) as process,
        ):
            try:
                process.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise ExportError(
                    f"the export ran past its {limits.timeout_s:g} s limit and was stopped"
                ) from None
    finally:
        if cgroup is not None:
            cgroup.close()
    with sandbox_log.open("rb") as f:
        f.seek(max(0, sandbox_log.stat().st_size - 4096))
        tail = f.read().decode(errors="replace").strip().splitlines()[-1:]
    code = process.returncode
    report = _read_report(scratch)
    if code != 0 or "error" in report or "onnx" not in report:
        reason = report.get("error")
        if not isinstance(reason, str) or not reason:
            last = tail[0] if tail else f"exit status {code}"
            reason = f"the sandboxed export stopped: {last[:300]}"
            if code in (-9, 137):
                reason = "the sandboxed export was killed (a limit: memory, CPU time or processes)"
        raise ExportError(reason[:1000])
    task, raw = report.get("task"), report.get("raw")
    try:
        assert isinstance(task, str) and isinstance(raw, dict)
        figures = RawParity(int(raw["outputs_checked"]), float(raw["max_abs_diff"]), float(raw["rtol"]))
    except (AssertionError, KeyError, TypeError, ValueError):
        raise ExportError("the sandboxed export's report is malformed") from None
    reference = Reference.parse(report["reference"]) if "reference" in report else None
    return SandboxOutput(_take_onnx(scratch, report["onnx"], target), task, figures, reference)
