"""The local Triton runtime: the real `tritonserver` from the `nvidia-pytriton` wheel, on the CPU.

It lives in its own virtualenv because Triton's Python-backend stub embeds the system
libpython3.11, ignores PYTHONPATH and needs numpy<2 (with numpy 2 it returns empty tensors).
Models reach that env through their `EXECUTION_ENV_PATH` parameter. In production the same
model folders are served by the NGC container instead (see `docker/`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Literal

import httpx

from core.settings import Settings
from trident import supervisor
from trident.stopping import TRITON_EXIT_S, ending_with_us, terminate

RUNTIME_REQUIREMENTS = ("nvidia-pytriton==0.7.0", "numpy<2", "onnxruntime==1.32.0")
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


class TritonRuntimeError(Exception):
    """The local Triton runtime could not be installed or started."""


def _tritonserver_root(env: Path) -> Path:
    return env / "lib" / f"python{PY}" / "site-packages" / "pytriton" / "tritonserver"


def ensure_runtime(env: Path, quiet: bool = False) -> Path:
    """Install the runtime env once (idempotent); return the `tritonserver` folder inside it."""
    marker = env / ".trident-runtime"
    wanted = "\n".join(RUNTIME_REQUIREMENTS)
    root = _tritonserver_root(env)
    if not (marker.is_file() and marker.read_text() == wanted and (root / "bin" / "tritonserver").is_file()):
        if not (env / "bin" / "python").exists():
            venv.EnvBuilder(with_pip=True, clear=False).create(env)
        cmd = [
            str(env / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            *(["-q"] if quiet else []),
            *RUNTIME_REQUIREMENTS,
        ]
        if subprocess.run(cmd, check=False).returncode != 0:
            raise TritonRuntimeError(
                "pip could not install the Triton runtime: " + " ".join(RUNTIME_REQUIREMENTS)
            )
        marker.write_text(wanted)
    stub = root / "backends" / "python" / "triton_python_backend_stub"
    if not stub.exists():
        source = root / "python_backend_stubs" / PY / "triton_python_backend_stub"
        if not source.exists():
            raise TritonRuntimeError(f"nvidia-pytriton ships no Python-backend stub for Python {PY}")
        shutil.copy2(source, stub)
    return root


def server_command(settings: Settings, root: Path, repository: Path) -> list[str]:
    """`tritonserver` in explicit model-control mode: it loads every model it finds at start, then
    only what Trident asks through its repository API (the frontend's `ModelLoader` loads models
    and versions exported while it runs; deployments load and unload their own)."""
    return [
        str(root / "bin" / "tritonserver"),
        f"--model-repository={repository.resolve()}",
        f"--backend-directory={root / 'backends'}",
        "--model-control-mode=explicit",
        "--load-model=*",
        "--strict-readiness=false",  # ready = serving; one broken model must not hide the others
        "--exit-on-error=false",
        f"--grpc-address={settings.triton_host}",
        f"--grpc-port={settings.triton_grpc_port}",
        f"--http-address={settings.triton_host}",
        f"--http-port={settings.triton_http_port}",
        f"--metrics-port={settings.triton_metrics_port}",
        "--log-verbose=0",
        f"--exit-timeout-secs={TRITON_EXIT_S}",  # in-flight inferences finish (docs: "Stop timeouts")
    ]


def launch(settings: Settings, repository: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment that start `tritonserver` on `repository`.

    A missing repository is created; a path that is not a folder is left for Triton to report."""
    root = ensure_runtime(settings.runtime_dir, quiet=True)
    if not repository.exists():
        repository.mkdir(parents=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # a __pycache__ in a model folder triggers a reload
    return server_command(settings, root, repository), env


def start_triton(
    settings: Settings, repository: Path, log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `tritonserver` (not waiting for it); its output goes to `log_path` or ours."""
    command, env = launch(settings, repository)
    out = log_path.open("ab") if log_path else None
    return subprocess.Popen(
        ending_with_us(command),
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )


def health(settings: Settings) -> Literal["down", "starting", "ready", "broken"]:
    """What Triton's HTTP health says: no answer, live but not ready, ready, or not live.

    Not live while answering means it failed to start and stays up anyway (`--exit-on-error=false`,
    e.g. a repository path that is not a folder): it will never serve."""
    try:
        if httpx.get(f"{settings.triton_http_url}/v2/health/live", timeout=1.0).status_code != 200:
            return "broken"
        ready = httpx.get(f"{settings.triton_http_url}/v2/health/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return "down"
    return "ready" if ready else "starting"


def wait_ready(
    settings: Settings, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 120
) -> None:
    """Block until Triton's HTTP `/v2/health/ready` answers 200."""
    deadline = time.monotonic() + timeout_s
    url = f"{settings.triton_http_url}/v2/health/ready"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TritonRuntimeError(
                f"tritonserver exited with code {process.returncode} before it was ready"
            )
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TritonRuntimeError(f"Triton was not ready after {timeout_s:.0f} s ({url})")


def stop(process: subprocess.Popen[bytes], timeout_s: float = TRITON_EXIT_S) -> int:
    """SIGTERM, then SIGKILL after `timeout_s`; returns the exit code."""
    return terminate(process, timeout_s)


STUB = "triton_python_backend_stub"
STUB_SHM_PREFIX = "triton_python_backend_shm_region_"


def clean_leftovers(server_pid: int) -> list[str]:
    """End what a dead tritonserver left: its Python-backend stubs (they can outlive a SIGKILL'd
    server, holding a model's memory) and their shared-memory regions; returns the regions removed.

    A stub names its server's pid and its region on its command line:
    `triton_python_backend_stub <model.py> <region> <size> <growth> <server pid> ...`."""
    stubs = [
        p
        for p in supervisor.processes()
        if p.state != "Z"
        and p.argv
        and Path(p.argv[0]).name == STUB
        and (p.pgid == server_pid or p.argv[5:6] == [str(server_pid)])
    ]
    supervisor.kill(p.pid for p in stubs)
    supervisor.wait_gone([p.pid for p in stubs] + supervisor.kill_group(server_pid), timeout_s=5.0)
    regions = {a for p in stubs for a in p.argv if a.startswith(STUB_SHM_PREFIX)}
    return supervisor.remove_shm(regions | set(supervisor.stale_shm(STUB_SHM_PREFIX)))
