"""Peak memory and time of segmentation postprocessing: 300 instances on a 4000x3000 image.

    .venv/bin/python benchmarks/seg_postprocess.py [--instances 300] [--repeat 5]

Runs the frontend's own segment decoder (masks, polygons, JSON-ready predictions) on synthetic
head outputs: random prototypes and coefficients, 300 boxes spread over the 640x640 input of a
4000x3000 (w x h) image. Memory is measured with tracemalloc (NumPy reports its buffers to it),
so the figure is the peak *added* by postprocessing, not the interpreter's baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.modelspec import ModelSpec
from pipeline.contract import PredictOptions
from pipeline.decode import decode_segment
from pipeline.prepare import Prepared
from pipeline.render_seed import seed_predictions

INPUT_HW = (640, 640)
ORIG_HW = (3000, 4000)  # h, w


def synthetic_outputs(instances: int, seed: int = 0) -> dict[str, np.ndarray]:
    """An end-to-end segment head output `(1, 300, 38)` and prototypes `(1, 32, 160, 160)`."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 560, (instances, 2))
    wh = rng.uniform(20, 400, (instances, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, 640)], 1)
    rows = np.concatenate(
        [
            boxes,
            np.sort(rng.uniform(0.3, 1, (instances, 1)))[::-1],
            rng.integers(0, 80, (instances, 1)),
            rng.normal(0, 0.5, (instances, 32)),
        ],
        1,
    ).astype(np.float32)
    # prototypes are smooth fields in real models: random 20x20 fields upsampled to 160x160
    coarse = rng.normal(0, 1, (32, 20, 20)).astype(np.float32)
    protos = np.stack([cv2.resize(c, (160, 160), interpolation=cv2.INTER_CUBIC) for c in coarse])[None]
    return {"output0": rows[None], "output1": protos}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    spec = ModelSpec(
        task="segment",
        names={i: str(i) for i in range(80)},
        imgsz=INPUT_HW,
        stride=32,
        dynamic=False,
        end2end=True,
    )
    prep = Prepared(np.zeros((1, 3, *INPUT_HW), np.float32), INPUT_HW, ORIG_HW)
    outputs = synthetic_outputs(args.instances)
    params = PredictOptions(conf=0.25, iou=0.45)
    times, peaks, count = [], [], 0
    for _ in range(args.repeat):
        tracemalloc.start()
        start = time.perf_counter()
        predictions = seed_predictions(decode_segment(outputs, spec, params, prep), params)
        times.append(time.perf_counter() - start)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        count = len(predictions)
    points = sum(len(p["segments"]) for p in predictions)
    print(
        f"segment postprocess: {count} instances with masks ({points} polygon points) on a "
        f"{ORIG_HW[1]}x{ORIG_HW[0]} image, {args.repeat} runs"
    )
    print(
        f"  time: median {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, "
        f"max {max(times) * 1000:.0f})"
    )
    print(
        f"  peak added memory: median {statistics.median(peaks) / 2**20:.1f} MiB "
        f"(max {max(peaks) / 2**20:.1f} MiB; limit 1024 MiB)"
    )
    for_full_stack = args.instances * ORIG_HW[0] * ORIG_HW[1] / 2**20
    print(f"  for scale: {args.instances} full-resolution uint8 masks would take {for_full_stack:.0f} MiB")


if __name__ == "__main__":
    main()
