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


def test_py_spy_samples_go_to_the_stage_of_their_innermost_known_frame() -> None:
    """`--stages`: the leaf decides when it is known, else the nearest known caller; startup,
    shutdown and pool threads waiting at their queue are left out; periodic work is background."""
    loop = "run (uvicorn/main.py:1);Runner.run (asyncio/runners.py:118)"
    worker = "Thread._bootstrap (threading.py:1);WorkerThread.run (anyio/_backends/_asyncio.py:1)"
    collapsed = "\n".join(
        [
            f"{worker};_decode_and_prepare (frontend/serving/image.py:30);"
            "decode_image (frontend/serving/imaging.py:9) 7",
            f"{worker};decode_and_render (frontend/serving/inference.py:1);nms (postprocess/nms.py:56);"
            "_wrapfunc (numpy/core/fromnumeric.py:57) 5",
            f"{worker};render (frontend/serving/inference.py:140) 2",
            f"{worker};KeyStore.verify (store/keys.py:1);Connection.execute (sqlalchemy/engine/base.py:1) 3",
            f"{loop};predict (frontend/api/predict.py:60);Triton.infer (frontend/serving/triton.py:1) 4",
            f"{loop};read_predict_form (frontend/serving/form.py:1);parse (multipart/multipart.py:1) 6",
            f"{loop} 9",
            f"{worker};Queue.get (queue.py:171);Condition.wait (threading.py:327) 50",
            f"{loop};lifespan (frontend/app.py:99);_find_and_load (<frozen importlib._bootstrap>:1) 40",
            f"{worker};_flush (frontend/app.py:1);UsageLog.flush (store/usage.py:1) 1",
            "not a sample line",
        ]
    )
    counts = bench.stage_samples(collapsed)
    assert {k: v for k, v in counts.items() if v} == {
        "decode": 7,
        "output decode": 5,
        "JSON": 2,
        "auth + quota": 3,
        "Triton call": 4,
        "HTTP + multipart": 6,
        "event loop + thread hops": 9,
        "background": 1,
    }
    table = bench.stage_table({"1": {"samples": counts, "cpu_ms_per_request": 10.0}})
    assert "| decode | 18.9 % | 1.89 |" in table  # 7 of 37 samples of 10 ms
    assert "| **all** (measured from /proc) | 37 samples | 10.00 |" in table


def test_ab_summary_takes_the_median_round_and_all_latencies() -> None:
    rounds = [
        {"cpu_ms": 10.0, "latency_ms": [50.0, 52.0], "floor_ms": [40.0, 40.0]},
        {"cpu_ms": 12.0, "latency_ms": [54.0], "floor_ms": [40.0]},
        {"cpu_ms": 8.0, "latency_ms": [51.0], "floor_ms": []},
    ]
    s = bench.ab_summary(rounds)
    assert (s["cpu_ms_per_request"], s["cpu_ms_min"], s["cpu_ms_max"]) == (10.0, 8.0, 12.0)
    assert (s["p50_ms"], s["triton_compute_p50_ms"], s["p50_over_compute"], s["requests"]) == (
        51.5,
        40.0,
        1.288,
        4,
    )
    other = {**s, "cpu_ms_per_request": 5.0, "p50_ms": 41.2}
    table = bench.ab_table({"bus.jpg": {"base": s, "this": other}}, "main")
    assert "| bus.jpg | base (main) | 10.00 (8.00-12.00) | 51.50 |" in table
    assert "| bus.jpg | this / base | 0.500 | 0.800 | | | |" in table
