"""What batching and thread layout give ONNX Runtime alone on this machine: the ceiling for throughput.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/ort_batching.py

Exports a YAML `yolo11n` (dynamic, as `bench.py`) and runs it in this process with ONNX Runtime,
no Triton and no frontend, in rounds that alternate the ways of running it so that drift hits all
alike:

- `batch 1` / `batch 8`: one session with ONNX Runtime's default threads, one image per call
  against eight per call (time per image);
- `1 thread`: a single-threaded session, one image per call (the latency of one instance of
  `--instances 2 --ort-threads 1`);
- `1 thread x 2`: two single-threaded sessions running at once (its throughput).

Prints medians per image (wall time divided by images) and the CPU time per image of the
two-thread session. Throughput through Triton cannot beat these figures, since the frontend and
the Python backend share the same cores.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def runners(
    sessions: dict[str, Any], hw: tuple[int, int], images: int
) -> dict[str, tuple[Callable[[], None], int]]:
    """Each way of running the model on `images` images, and how many images it runs."""
    default, single, other = sessions["default"], sessions["single"], sessions["other"]
    name = default.get_inputs()[0].name
    one = np.random.default_rng(0).random((1, 3, *hw), dtype=np.float32)
    eight = np.repeat(one, 8, axis=0)
    calls8 = max(images // 8, 1)

    def batch1() -> None:
        for _ in range(images):
            default.run(None, {name: one})

    def batch8() -> None:
        for _ in range(calls8):
            default.run(None, {name: eight})

    def one_thread() -> None:
        for _ in range(images):
            single.run(None, {name: one})

    def two_streams() -> None:
        half = images // 2
        thread = threading.Thread(target=lambda: [other.run(None, {name: one}) for _ in range(half)])
        thread.start()
        for _ in range(images - half):
            single.run(None, {name: one})
        thread.join()

    return {
        "batch 1": (batch1, images),
        "batch 8": (batch8, 8 * calls8),
        "1 thread": (one_thread, images),
        "1 thread x 2": (two_streams, images),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--shapes", nargs="+", default=["480x640", "640x640"], help="HxW (bus.jpg: 480x640)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--images", type=int, default=8, help="images per system and round")
    args = parser.parse_args(argv)

    import onnxruntime as ort
    from ultralytics import YOLO

    from exporter.onnx_export import export_onnx

    work = Path(tempfile.mkdtemp(prefix="ort-batching-"))
    onnx = export_onnx(YOLO(args.model), work, imgsz=640, dynamic=True)

    def session(threads: int) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        return ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])

    sessions = {"default": session(0), "single": session(1), "other": session(1)}
    print(f"ONNX Runtime {ort.__version__}, {args.model}, {args.rounds} rounds of {args.images} images each")
    for shape in args.shapes:
        h, w = (int(v) for v in shape.split("x"))
        systems = runners(sessions, (h, w), args.images)
        for run, _ in systems.values():  # warm-up
            run()
        per_image: dict[str, list[float]] = {k: [] for k in systems}
        cpu_per_image: dict[str, list[float]] = {k: [] for k in systems}
        order = list(systems)
        for r in range(args.rounds):
            for key in order[r % len(order) :] + order[: r % len(order)]:
                run, images = systems[key]
                c0, t0 = cpu_s(), time.perf_counter()
                run()
                per_image[key].append((time.perf_counter() - t0) / images * 1000)
                cpu_per_image[key].append((cpu_s() - c0) / images * 1000)
        medians = {k: statistics.median(v) for k, v in per_image.items()}
        print(f"\n{shape}: ms per image, median (CPU ms per image)")
        for key in systems:
            print(f"  {key:14s} {medians[key]:7.1f}  ({statistics.median(cpu_per_image[key]):6.1f})")
        print(f"  batch 8 / batch 1 throughput       {medians['batch 1'] / medians['batch 8']:.2f} x")
        print(f"  1 thread x 2 / batch 1 throughput  {medians['batch 1'] / medians['1 thread x 2']:.2f} x")
        print(f"  1 thread / batch 1 latency         {medians['1 thread'] / medians['batch 1']:.2f} x")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
