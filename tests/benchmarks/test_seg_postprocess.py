"""The README's bounded segmentation memory, held as a test: 300 instances on a 4000x3000 image add
under 256 MiB at peak (300 full-resolution masks would be 3.4 GiB), with the benchmark's own inputs."""

from __future__ import annotations

import importlib.util
import sys
import tracemalloc
from pathlib import Path
from types import ModuleType

import numpy as np

from core.modelspec import ModelSpec
from pipeline.contract import PredictOptions
from pipeline.decode import decode_segment
from pipeline.prepare import Prepared
from pipeline.render_seed import seed_predictions

LIMIT_BYTES = 256 * 2**20


def load_benchmark() -> ModuleType:
    path = Path(__file__).parents[2] / "benchmarks" / "seg_postprocess.py"
    spec = importlib.util.spec_from_file_location("seg_postprocess", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["seg_postprocess"] = module
    spec.loader.exec_module(module)
    return module


def test_300_instances_on_a_12_mp_image_add_under_256_mib() -> None:
    bench = load_benchmark()
    spec = ModelSpec(
        task="segment",
        names={i: str(i) for i in range(80)},
        imgsz=bench.INPUT_HW,
        stride=32,
        dynamic=False,
        end2end=True,
    )
    prep = Prepared(np.zeros((1, 3, *bench.INPUT_HW), np.float32), bench.INPUT_HW, bench.ORIG_HW)
    outputs = bench.synthetic_outputs(300)
    params = PredictOptions(conf=0.25, iou=0.45)
    tracemalloc.start()
    try:
        predictions = seed_predictions(decode_segment(outputs, spec, params, prep), params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert bench.ORIG_HW == (3000, 4000)
    assert len(predictions) == 300 and all(len(p["segments"]) >= 3 for p in predictions)  # not vacuous
    print(f"peak added memory: {peak / 2**20:.1f} MiB")
    assert peak < LIMIT_BYTES, f"{peak / 2**20:.0f} MiB"
