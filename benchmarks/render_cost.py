"""What the Platform rendering costs next to the seed rendering, on the same `Result`.

Both renderings are timed interleaved in one run (serialisation included, as the server does it):
300 detections, and 100 segment instances decoded from a synthetic head on a 4000x3000 image.
The target: the Platform rendering costs at most 0.3 ms more than the seed one.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/render_cost.py [--rounds 400]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.seg_postprocess import INPUT_HW, ORIG_HW, synthetic_outputs
from core.modelspec import ModelSpec
from pipeline.contract import PredictOptions
from pipeline.decode import decode_segment
from pipeline.prepare import Prepared
from pipeline.render_platform import platform_results
from pipeline.render_seed import seed_predictions
from pipeline.result import Result

TARGET_MS = 0.3
NAMES = {i: f"class{i}" for i in range(80)}


def detections(n: int, seed: int = 0) -> Result:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 3000, (n, 2))
    xyxy = np.concatenate([xy, xy + rng.uniform(5, 900, (n, 2))], 1).astype(np.float32)
    conf = np.sort(rng.uniform(0.25, 1, n)).astype(np.float32)[::-1].copy()
    return Result("detect", NAMES, ORIG_HW, rng.integers(0, 80, n).astype(np.int64), conf, xyxy=xyxy)


def segments(n: int) -> Result:
    spec = ModelSpec("segment", NAMES, INPUT_HW, 32, dynamic=False, end2end=True)
    prep = Prepared(np.zeros((1, 3, *INPUT_HW), np.float32), INPUT_HW, ORIG_HW)
    return decode_segment(synthetic_outputs(n), spec, PredictOptions(), prep)


def paired(a: Callable[[], object], b: Callable[[], object], rounds: int) -> tuple[float, float, float]:
    """Median ms of `a`, of `b`, and median of the per-round difference b - a (alternating order)."""
    ta, tb, diff = [], [], []
    for i in range(rounds):
        pair = []
        for fn in (a, b) if i % 2 == 0 else (b, a):
            start = time.perf_counter()
            fn()
            pair.append((fn, (time.perf_counter() - start) * 1000))
        ms = {id(fn): t for fn, t in pair}
        ta.append(ms[id(a)])
        tb.append(ms[id(b)])
        diff.append(ms[id(b)] - ms[id(a)])
    return statistics.median(ta), statistics.median(tb), statistics.median(diff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    options = PredictOptions()
    worst = 0.0
    for label, result in (("300 boxes", detections(300)), ("100 polygons", segments(100))):
        points = sum(len(p) for p in result.polygons or [])
        seed_ms, platform_ms, extra = paired(
            lambda r=result: orjson.dumps(seed_predictions(r, options)),
            lambda r=result: orjson.dumps(platform_results(r, options)),
            args.rounds,
        )
        worst = max(worst, extra)
        detail = f", {points} outline points" if points else ""
        print(
            f"{label} ({len(result)} instances{detail}): seed {seed_ms:.3f} ms, "
            f"platform {platform_ms:.3f} ms, platform - seed {extra:+.3f} ms "
            f"(median of {args.rounds} paired rounds)"
        )
    verdict = "met" if worst <= TARGET_MS else "NOT met"
    print(f"target: platform costs at most {TARGET_MS} ms more: {verdict} (worst {worst:+.3f} ms)")


if __name__ == "__main__":
    main()
