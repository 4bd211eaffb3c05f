"""Paired A/B of the compact head: the full `output0` against `trident_candidates`, same model.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/candidates_ab.py --data-dir .trident

Builds YAML `yolo11n` models at one or more class-logit biases (`-4` is `bench.py`'s busy model,
about 2,400 candidates at conf 0.25 on bus.jpg; lower biases find fewer, closer to trained
weights), exports them with Trident's exporter (dynamic, as `bench.py`), starts one local Triton
and then, on bus.jpg letterboxed as the frontend does it, alternates the two ways of asking
(the order flipping every pair, so drift hits both alike):

- `full`: `images_u8` in, `output0` out (what the frontend does for a config without the output);
- `compact`: `images_u8` and `conf_threshold` in, `trident_candidates` out.

For each it times the gRPC call (Triton's compute included, the same for both) and the frontend's
row selection (`select_rows`: the candidate filter and NMS), checks that the rows are identical,
and prints medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


Call = tuple[float, float, tuple[int, ...], Any]


def one_call(client: Any, name: str, tensor: Any, nc: int, conf: float, compact: bool) -> Call:
    """(gRPC call ms, select_rows ms, the head's shape, the rows)."""
    import tritonclient.grpc as grpcclient

    from core.modelspec import CANDIDATES_OUTPUT, CONF_INPUT, U8_INPUT
    from postprocess.detect import select_rows

    inputs = [grpcclient.InferInput(U8_INPUT, list(tensor.shape), "UINT8")]
    inputs[0].set_data_from_numpy(tensor)
    output = "output0"
    if compact:
        inputs.append(grpcclient.InferInput(CONF_INPUT, [1, 1], "FP32"))
        inputs[1].set_data_from_numpy(np.full((1, 1), conf, dtype=np.float32))
        output = CANDIDATES_OUTPUT
    start = time.perf_counter()
    head = client.infer(name, inputs, outputs=[grpcclient.InferRequestedOutput(output)]).as_numpy(output)
    mid = time.perf_counter()
    rows = select_rows(head[0], nc=nc, end2end=False, conf=conf, iou=0.45)
    end = time.perf_counter()
    return (mid - start) * 1000, (end - mid) * 1000, head.shape, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cls-bias", type=float, nargs="+", default=[-4.0, -7.0])
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--image", default="bus.jpg")
    parser.add_argument("--data-dir", default=".trident", help="where the local Triton runtime lives")
    args = parser.parse_args(argv)

    import cv2
    import tritonclient.grpc as grpcclient
    from ultralytics.utils import ASSETS

    from benchmarks.bench import local_settings
    from core.modelspec import ModelSpec
    from core.slug import Slug
    from exporter.export import ExportRequest, export_model
    from exporter.triton_config import ServingOptions
    from pipeline.prepare import Prepared, prepare
    from tests.helpers.models import build_busy_model
    from trident import runtime

    work = Path(tempfile.mkdtemp(prefix="trident-ab-"))
    settings = local_settings(Path(args.data_dir), work)
    repository = work / "model_repository"
    names = {}
    for bias in args.cls_bias:
        pt = build_busy_model("yolo11n.yaml", work / f"bias{bias}.pt", cls_bias=bias)
        slug = Slug.parse(f"bench/ab/bias{int(-bias * 10)}")
        options = ServingOptions(execution_env=str(settings.runtime_dir))
        result = export_model(ExportRequest(pt, slug, repository, dynamic=True, options=options))
        names[bias] = result.triton_name

    image = cv2.imread(str(Path(ASSETS) / args.image))
    with ExitStack() as cleanup:
        triton = runtime.start_triton(settings, repository, work / "triton.log")
        cleanup.callback(runtime.stop, triton)
        runtime.wait_ready(settings, triton)
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{settings.triton_grpc_port}")
        for bias, name in names.items():
            while not client.is_model_ready(name):
                time.sleep(0.5)
            config = client.get_model_config(name, as_json=True)["config"]
            spec = ModelSpec.from_json(config["parameters"]["trident"]["string_value"])
            prep = prepare(image, spec, 640, u8=True)

            def call(
                compact: bool, name: str = name, prep: Prepared = prep, nc: int = len(spec.names)
            ) -> Call:
                return one_call(client, name, prep.tensor, nc, args.conf, compact)

            for compact in (False, True):  # warm up
                call(compact)
            samples: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            shapes: dict[bool, tuple[int, ...]] = {}
            for i in range(args.pairs):
                order = (False, True) if i % 2 == 0 else (True, False)
                results = {}
                for compact in order:
                    infer_ms, post_ms, shape, rows = call(compact)
                    samples[compact].append((infer_ms, post_ms))
                    shapes[compact] = shape
                    results[compact] = rows
                np.testing.assert_array_equal(results[True], results[False])
            print(
                f"cls_bias {bias}: {args.image} at conf {args.conf}, {shapes[True][2]} of {shapes[False][2]}"
                f" anchors sent, {len(results[True])} boxes kept, rows identical in {args.pairs} pairs"
            )
            for compact in (False, True):
                infer = statistics.median(s[0] for s in samples[compact])
                post = statistics.median(s[1] for s in samples[compact])
                both = statistics.median(s[0] + s[1] for s in samples[compact])
                label = "compact" if compact else "full"
                print(
                    f"  {label:8s} output {np.prod(shapes[compact]) * 4 / 1e6:5.2f} MB   gRPC call p50"
                    f" {infer:6.2f} ms   select_rows p50 {post:6.2f} ms   both p50 {both:6.2f} ms"
                )
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
