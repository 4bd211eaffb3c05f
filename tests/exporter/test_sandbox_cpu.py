"""The sandbox's CPU quota, called as the worker calls it: a checkpoint that keeps two processes
busy gets no more than `Limits.cpus` cores between them, so a hostile upload on a serving host
leaves the rest of the machine to serving (docs/uploads.md)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from exporter import sandbox
from exporter.errors import ExportError
from exporter.sandbox import Limits, export_in_sandbox
from tests.helpers.uploads import crafted

SPIN = """
import os, resource, time
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        end = time.monotonic() + {seconds}
        while time.monotonic() < end:
            pass
        os._exit(0)
    children.append(pid)
start = time.monotonic()
for pid in children:
    os.waitpid(pid, 0)
used = resource.getrusage(resource.RUSAGE_CHILDREN)
raise RuntimeError(f"SPUN cpu={{used.ru_utime + used.ru_stime:.3f}} wall={{time.monotonic() - start:.3f}}")
"""
LIMITS = Limits(memory_bytes=8 << 30, cpu_s=120, processes=64, timeout_s=300, file_bytes=1 << 30, cpus=0.5)


@pytest.mark.skipif(os.geteuid() != 0, reason="a sandbox gets a cgroup of its own where the worker is root")
def test_two_busy_processes_in_the_sandbox_share_the_cores_of_its_quota(tmp_path: Path) -> None:
    checkpoint = crafted(tmp_path / "spin.pt", SPIN.format(seconds=3))
    with pytest.raises(ExportError) as failed:
        export_in_sandbox(checkpoint, tmp_path / "job" / "sandbox", LIMITS, tmp_path / "model.onnx")
    figures = re.search(r"SPUN cpu=([\d.]+) wall=([\d.]+)", str(failed.value))
    assert figures, failed.value
    cpu, wall = float(figures[1]), float(figures[2])
    assert wall >= 2.9 and cpu > 0.3  # they ran, and spun
    # without the quota two spinning processes take up to two cores (6 s of CPU in 3 s here)
    assert cpu <= LIMITS.cpus * wall * 1.2 + 0.1, (cpu, wall)


def test_a_cgroup_without_a_cpu_controller_keeps_the_memory_and_task_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cgroup v1 with only `memory` and `pids` writable: the sandbox still gets both limits."""
    for controller in ("memory", "pids"):
        (tmp_path / controller).mkdir()
    monkeypatch.setattr(sandbox, "CGROUPS", tmp_path)
    monkeypatch.setattr(sandbox, "_own_cgroups", lambda: {"memory": "/", "pids": "/", "cpu": "/"})
    cgroup = sandbox.Cgroup.create("trident-sandbox-test", LIMITS)
    assert cgroup is not None
    assert cgroup.dirs == [
        tmp_path / "memory" / "trident-sandbox-test",
        tmp_path / "pids" / "trident-sandbox-test",
    ]
    assert (cgroup.dirs[0] / "memory.limit_in_bytes").read_text() == str(LIMITS.memory_bytes)
    assert (cgroup.dirs[1] / "pids.max").read_text() == str(LIMITS.processes)
