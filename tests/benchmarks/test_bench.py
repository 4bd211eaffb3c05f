"""The harness's own arithmetic: percentiles, Server-Timing medians, ratios, the table (no timing)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


def load_bench() -> ModuleType:
    path = Path(__file__).parents[2] / "benchmarks" / "bench.py"
    spec = importlib.util.spec_from_file_location("bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = load_bench()


@pytest.mark.parametrize("q", [0, 5, 50, 95, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.5, 2.25]
    assert bench.percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_percentile_of_nothing_is_nan() -> None:
    assert np.isnan(bench.percentile([], 50))


def test_server_timing_medians() -> None:
    headers = [
        "preprocess;dur=2.0, inference;dur=40, postprocess;dur=1",
        "preprocess;dur=4.0, inference;dur=44",
    ]
    assert bench.server_timing_medians([*headers, ""]) == {
        "preprocess": 3.0,
        "inference": 42.0,
        "postprocess": 1.0,
    }


def results() -> dict[str, object]:
    lat = {
        s: bench.latency_summary(v)
        for s, v in {"floor": [40.0], "trident": [50.0], "ultra_triton": [100.0]}.items()
    }
    return {
        "latency": {"bus.jpg": lat},
        "throughput": {
            "trident": {"1": {"rps": 20.0, "p95_ms": 60.0}, "8": {"rps": 30.0, "p95_ms": 300.0}},
            "ultra_triton": {"1": {"rps": 10.0, "p95_ms": 110.0}, "8": {"rps": 12.0, "p95_ms": 700.0}},
            "ultra_onnx": {"1": {"rps": 15.0, "p95_ms": 70.0}},
        },
    }


def test_ratios_are_trident_over_each_peer() -> None:
    r = bench.ratios(results(), "bus.jpg", 8)
    assert r == {
        "trident_p50/floor_p50": 1.25,
        "trident_p50/ultra_triton_p50": 0.5,
        "trident_rps@c8/ultra_triton_rps@c1": 3.0,
        "trident_rps@c8/ultra_onnx_rps@c1": 2.0,
        "trident_rps@c8/ultra_triton_rps@c8": 2.5,
    }


def test_table_renders_every_system_and_ratio_and_is_json_safe() -> None:
    data = results()
    data["ratios"] = {"bus.jpg": bench.ratios(data, "bus.jpg", 8)}
    data["frontend_rss_mb"], data["frontend_requests"] = 123.4, 2000
    data["trident_cpu_ms_per_request"] = {"8": {"frontend": 19.5, "triton": 84.0}}
    data["trident_server_timing_ms"] = {"bus.jpg": {"preprocess": 5.5, "inference": 41.0}}
    table = bench.render_table(data)
    for needle in ("floor", "ultra_onnx", "trident_p50/floor_p50", "1.250", "123.4 MB", "c=8"):
        assert needle in table
    assert "trident CPU per request at c=8 (ms, all cores): frontend 19.5, triton 84.0" in table
    assert "trident Server-Timing medians at c=1, bus.jpg (ms): preprocess 5.50, inference 41.00" in table
    assert json.loads(json.dumps(data)) == data


def test_cpu_of_a_process_tree_counts_its_children() -> None:
    """What `trident_cpu_ms_per_request` adds up: a process and its children (Triton's stubs)."""
    burn = (
        "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", burn])
    try:
        deadline = time.monotonic() + 30
        while bench.tree_cpu_s(child.pid) < 0.5:
            assert time.monotonic() < deadline, "the child never burnt its 0.5 s"
            time.sleep(0.05)
        assert child.pid in bench.process_tree(os.getpid())
        assert bench.tree_cpu_s(os.getpid()) >= time.process_time() + 0.45  # ours plus the child's
    finally:
        child.kill()
        child.wait()
