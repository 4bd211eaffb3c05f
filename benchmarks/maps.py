"""Time and peak added memory of a 12 MP semantic or depth answer (decode + PNG + JSON).

From the model's 640x640 output to the serialised map object, as `frontend.api.predict` runs it in its
worker thread: `decode_semantic` / `decode_depth` (back to a 4000x3000 image), `map_objects`
(PNG and base64) and `orjson.dumps`. Each case runs in a fresh process; "added" is the peak
resident memory during the case minus the peak before it (imports and inputs already loaded).

    .venv/bin/python benchmarks/maps.py
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IMAGE_HW = (3000, 4000)  # 12 MP
REPEATS = 3


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(task: str, bits: int) -> None:
    import numpy as np
    import orjson

    from core.modelspec import ModelSpec
    from pipeline.contract import PredictOptions
    from pipeline.decode import decode_depth, decode_semantic
    from pipeline.prepare import Prepared
    from pipeline.render_maps import map_objects
    from pipeline.render_platform import platform_results

    rng = np.random.default_rng(0)
    names = {i: str(i) for i in range(19)}
    spec = ModelSpec(task, names, imgsz=(640, 640), stride=32, dynamic=False, end2end=False)  # type: ignore[arg-type]
    if task == "depth":
        smooth = rng.normal(1.0, 1.0, (1, 1, 20, 20)).astype(np.float32)
        log_depth = np.kron(smooth, np.ones((32, 32), np.float32)) + rng.normal(0, 0.05, (1, 1, 640, 640))
        output = np.exp(log_depth).astype(np.float32)  # (1, 1, 640, 640), blocks plus per-pixel noise
        decode = decode_depth
        prep = Prepared(np.zeros(1, np.float32), (640, 640), IMAGE_HW)
    else:
        blocks = rng.integers(0, 19, (1, 20, 20)).astype(np.uint8)
        output = np.kron(blocks, np.ones((32, 32), np.uint8))  # (1, 640, 640) class ids in blocks
        output[:, rng.random((640, 640)) < 0.02] = 7  # and scattered pixels: a busier PNG
        decode = decode_semantic
        prep = Prepared(np.zeros(1, np.float32), (640, 640), IMAGE_HW)  # 4:3: rows 80..560 are the image
    options = PredictOptions(bits=bits)  # type: ignore[arg-type]
    before = _peak_mb()
    times, size = [], 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = decode({"output0": output}, spec, options, prep)
        rows = orjson.dumps(platform_results(result, options))
        maps = {k: orjson.dumps(v) for k, v in map_objects(result, options.bits).items()}
        times.append(time.perf_counter() - start)
        size = len(rows) + sum(len(v) for v in maps.values())
        del result, rows, maps
    added = _peak_mb() - before
    label = f"{task} bits={bits}" if task == "depth" else "semantic"
    print(
        f"{label:<16} {IMAGE_HW[1]}x{IMAGE_HW[0]}: best {min(times):.3f} s, median {sorted(times)[1]:.3f} s, "
        f"peak added {added:.0f} MB, answer {size / 1e6:.1f} MB"
    )


def main() -> None:
    if len(sys.argv) == 3:
        run_case(sys.argv[1], int(sys.argv[2]))
        return
    for task, bits in (("semantic", 8), ("depth", 8), ("depth", 12), ("depth", 16)):
        subprocess.run([sys.executable, __file__, task, str(bits)], check=True)


if __name__ == "__main__":
    main()
