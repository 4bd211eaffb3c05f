"""Paired A/B of shared memory for the input: system shared memory against the gRPC message.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/shm_ab.py --data-dir .trident

Builds `bench.py`'s busy YAML `yolo11n`, exports it with Trident's exporter (dynamic, compact head,
as `bench.py`), starts one local Triton and then, on each image letterboxed as the frontend does it
(`images_u8`, BGR HWC uint8: bus.jpg 480x640, 0.9 MB), alternates the two transports of the
frontend's own `frontend.serving.triton.Triton.infer` (the order flipping every pair, so drift hits both
alike):

- `shm`: `TRIDENT_TRITON_SHARED_MEMORY=auto` (the input written into a registered region);
- `grpc`: `off` (the input inside the gRPC message).

It checks that both return identical tensors and that the shared-memory side really used its
region, and prints the p50 of each and the p50 of the paired difference (grpc - shm; positive:
shared memory is faster), for the call and for the call less Triton's compute time for that very
request (from its statistics API, as `bench.py`'s floor): the part the transport can change.
With `--http-pairs N` (default 40; 0 skips it) it also starts two frontends on that Triton, one
per setting, alternates whole predict requests (multipart upload to JSON) between them the same
way, and reports each frontend's mean CPU time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def summary(label: str, samples: dict[str, list[float]]) -> str:
    shm, grpc = samples["shm"], samples["grpc"]
    diff = [g - s for s, g in zip(shm, grpc, strict=True)]
    faster = sum(d > 0 for d in diff) / len(diff)
    return (
        f"  {label:22s} shm p50 {statistics.median(shm):7.2f} ms   grpc p50 {statistics.median(grpc):7.2f} ms"
        f"   paired diff (grpc - shm) p50 {statistics.median(diff):+6.2f} ms"
        f"   shm faster in {faster:4.0%} of {len(diff)} pairs"
    )


def cpu_ms(pid: int) -> float:
    """User + system CPU time of a process so far (clock ticks, so only totals over many requests)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def infer_pairs(
    url: str, http_port: int, name: str, images: list[str], pairs: int, conf: float
) -> list[str]:
    import cv2
    from ultralytics.utils import ASSETS

    from benchmarks.bench import triton_stats
    from core.modelspec import CANDIDATES_OUTPUT, CONF_INPUT, U8_INPUT, ModelSpec
    from frontend.serving.triton import Triton
    from pipeline.prepare import prepare

    clients = {"shm": Triton(url, 30.0, shared_memory="auto"), "grpc": Triton(url, 30.0, shared_memory="off")}
    deadline = time.monotonic() + 120
    while name not in await clients["grpc"].ready_models():
        assert time.monotonic() < deadline, f"{name} did not load"
        await asyncio.sleep(0.5)
    config = await clients["grpc"].model_config(name)
    spec = ModelSpec.from_json(config["parameters"]["trident"]["string_value"])
    lines = []
    try:
        for image_name in images:
            tensor = prepare(cv2.imread(str(Path(ASSETS) / image_name)), spec, 640, u8=True).tensor
            inputs = {U8_INPUT: tensor, CONF_INPUT: np.full((1, 1), conf, dtype=np.float32)}

            async def call(transport: str, inputs: dict[str, Any] = inputs) -> tuple[float, float, Any]:
                """(call ms, call ms less Triton's compute for it, the output)."""
                count, compute_ns = triton_stats(http_port, name)
                start = time.perf_counter()
                out = await clients[transport].infer(name, inputs, [CANDIDATES_OUTPUT])
                ms = (time.perf_counter() - start) * 1000
                for _ in range(100):  # Triton counts the request just after it answers
                    count_after, compute_after = triton_stats(http_port, name)
                    if count_after == count + 1:
                        break
                    await asyncio.sleep(0.002)
                assert count_after == count + 1, (count, count_after)
                return ms, ms - (compute_after - compute_ns) / 1e6, out[CANDIDATES_OUTPUT]

            for transport in clients:  # warm up (registers the region)
                await call(transport)
            samples: dict[str, list[float]] = {"shm": [], "grpc": []}
            outside: dict[str, list[float]] = {"shm": [], "grpc": []}
            for i in range(pairs):
                order = ("shm", "grpc") if i % 2 == 0 else ("grpc", "shm")
                results = {}
                for transport in order:
                    ms, rest, results[transport] = await call(transport)
                    samples[transport].append(ms)
                    outside[transport].append(rest)
                np.testing.assert_array_equal(results["shm"], results["grpc"])
            pool = clients["shm"].regions
            assert pool is not None and pool.enabled and any(r.registered for r in pool.regions), (
                "the shared-memory side fell back to gRPC"
            )
            lines.append(
                f"{image_name}: input {tuple(tensor.shape)} uint8 {tensor.nbytes / 1e6:.2f} MB,"
                f" outputs identical in {pairs} pairs"
            )
            lines.append(summary("Triton.infer", samples))
            lines.append(summary("  less Triton compute", outside))
    finally:
        for client in clients.values():
            await client.close()
    return lines


def http_pairs(settings: Any, work: Path, images: list[str], pairs: int, cleanup: ExitStack) -> list[str]:
    from ultralytics.utils import ASSETS

    from benchmarks.bench import PLANS, TridentClient, free_port, multipart, wait_callable
    from store.keys import KeyStore
    from trident import runtime

    key = KeyStore(settings.key_store_url).create_key("bench", "bench")[0]
    bodies = {name: multipart(Path(ASSETS) / name, {"conf": "0.25"}) for name in images}
    clients: dict[str, Callable[[str], None]] = {}
    pids: dict[str, int] = {}
    for transport, mode in (("shm", "auto"), ("grpc", "off")):
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "TRIDENT_PORT": str(port),
            "TRIDENT_TRITON_GRPC_PORT": str(settings.triton_grpc_port),
            "TRIDENT_TRITON_HTTP_PORT": str(settings.triton_http_port),
            "TRIDENT_DATABASE_URL": settings.key_store_url,
            "TRIDENT_PLANS": PLANS,
            "TRIDENT_TRITON_SHARED_MEMORY": mode,
        }
        frontend = subprocess.Popen(
            [sys.executable, "-m", "trident", "serve"],
            env=env,
            stdout=(work / f"frontend-{transport}.log").open("wb"),
            stderr=subprocess.STDOUT,
            cwd=work,
        )
        cleanup.callback(runtime.stop, frontend)
        pids[transport] = frontend.pid
        clients[transport] = TridentClient(port, key, bodies)
    lines = []
    for image_name in images:
        for client in clients.values():
            wait_callable(lambda c=client, n=image_name: c(n))
            for _ in range(3):
                client(image_name)
        samples: dict[str, list[float]] = {"shm": [], "grpc": []}
        cpu = {t: -cpu_ms(pid) for t, pid in pids.items()}
        for i in range(pairs):
            for transport in ("shm", "grpc") if i % 2 == 0 else ("grpc", "shm"):
                start = time.perf_counter()
                clients[transport](image_name)
                samples[transport].append((time.perf_counter() - start) * 1000)
        cpu = {t: (cpu[t] + cpu_ms(pid)) / pairs for t, pid in pids.items()}
        lines.append(f"{image_name}:")
        lines.append(summary("whole request (HTTP)", samples))
        lines.append(
            f"  frontend CPU per request (mean)   shm {cpu['shm']:5.2f} ms   grpc {cpu['grpc']:5.2f} ms"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=100, help="alternating pairs of Triton.infer calls")
    parser.add_argument("--http-pairs", type=int, default=40, help="pairs of whole requests; 0 skips them")
    parser.add_argument("--images", nargs="+", default=["bus.jpg", "zidane.jpg"])
    parser.add_argument("--cls-bias", type=float, default=-4.0, help="as bench.py (-4: its busy model)")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--data-dir", default=".trident", help="where the local Triton runtime lives")
    args = parser.parse_args(argv)

    from benchmarks.bench import SLUG, local_settings
    from core.slug import Slug
    from exporter.export import ExportRequest, export_model
    from exporter.triton_config import ServingOptions
    from tests.helpers.models import build_busy_model
    from trident import runtime

    work = Path(tempfile.mkdtemp(prefix="trident-shm-ab-"))
    settings = local_settings(Path(args.data_dir), work)
    repository = work / "model_repository"
    pt = build_busy_model("yolo11n.yaml", work / "model.pt", cls_bias=args.cls_bias)
    options = ServingOptions(execution_env=str(settings.runtime_dir))
    result = export_model(
        ExportRequest(pt, Slug.parse(SLUG), repository, dynamic=True, visibility="public", options=options)
    )
    with ExitStack() as cleanup:
        triton = runtime.start_triton(settings, repository, work / "triton.log")
        cleanup.callback(runtime.stop, triton)
        runtime.wait_ready(settings, triton)
        lines = asyncio.run(
            infer_pairs(
                settings.triton_grpc_url,
                settings.triton_http_port,
                result.triton_name,
                args.images,
                args.pairs,
                args.conf,
            )
        )
        print("\n".join(lines), flush=True)
        if args.http_pairs:
            print("\n".join(http_pairs(settings, work, args.images, args.http_pairs, cleanup)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
