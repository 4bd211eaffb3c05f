"""Video through Trident against Ultralytics in process, on this machine, in one interleaved run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/video.py [--rounds 2] [--frames 300] [--track]

It writes a 1080p video (`--frames` frames, mp4v) of moving crops of bus.jpg and zidane.jpg,
builds a YAML `yolo11n` made to find many boxes, exports it with Trident's exporter (static 640,
max batch 8), starts a local Triton and one frontend on free ports, and then, in rounds that
rotate the order so that machine drift hits all alike, times the whole video through:

- `trident`: one predict request answered with the whole JSON;
- `trident-stream`: the same request with `Accept: application/x-ndjson`, read line by line;
- `ultralytics`: `YOLO(<the same model.onnx>).predict(video, stream=True)` in this process;
- with `--track`, also `trident-bytetrack` and `trident-botsort`: the first request with
  `track=true` and that tracker, at the same `conf`, so the frames and detections are the same
  and the difference is the tracker's cost (issue 27's bound: at most 5 % of the frames per second).

It prints frames per second (median over rounds) and their ratio, the CPU milliseconds each system
spent per frame by process (the frontend, Triton with its Python-backend stubs, and this process:
the client, or Ultralytics itself), Triton's batch statistics for
the model (how many executions ran at each batch size), and the frontend's peak resident memory
growth (VmHWM) while it serves a video of about 100 MB (noise frames, `--big-stride` apart).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import cv2
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SLUG = "bench/video/yolo11n"
CONF, IOU = 0.25, 0.45


def crops_1080p(frames: int) -> Iterator[np.ndarray]:
    from ultralytics.utils import ASSETS

    images = [cv2.resize(cv2.imread(str(Path(ASSETS) / n)), (2400, 1500)) for n in ("bus.jpg", "zidane.jpg")]
    for t in range(frames):
        image = images[t * 2 // frames]
        x, y = (t * 3) % 480, (t * 2) % 420
        yield np.ascontiguousarray(image[y : y + 1080, x : x + 1920])


def noise_1080p(target_bytes: int, path: Path) -> Path:
    """A video of random frames (they barely compress) grown until it is about `target_bytes`."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (1920, 1080))
    written = 0
    while written < target_bytes:
        for _ in range(10):
            writer.write(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8))
        written = path.stat().st_size if path.exists() else 0
    writer.release()
    return path


def write_video(path: Path, frames: Iterator[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (1920, 1080))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def batch_stats(http_port: int, model: str) -> dict[int, int]:
    """Executions per batch size, from Triton's statistics API."""
    stats = httpx.get(f"http://127.0.0.1:{http_port}/v2/models/{model}/stats").json()
    return {
        int(b["batch_size"]): int(b["compute_infer"]["count"])
        for b in stats["model_stats"][0].get("batch_stats", [])
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--big-mb", type=int, default=95, help="size of the video the RSS is measured on")
    parser.add_argument("--big-stride", type=int, default=10)
    parser.add_argument("--skip-rss", action="store_true", help="skip the peak-memory part")
    parser.add_argument("--data-dir", default=".trident", help="where the local Triton runtime lives")
    parser.add_argument("--track", action="store_true", help="also time the video with each tracker")
    parser.add_argument("--conf", type=float, default=CONF, help="fewer boxes a frame as it rises")
    parser.add_argument(
        "--ort-threads",
        type=int,
        default=0,
        help="ONNX Runtime threads of the model (0: one per core); 1 leaves a core to the frontend, "
        "as a GPU host leaves its cores to the frontend",
    )
    parser.add_argument(
        "--no-ort-spinning",
        action="store_true",
        help="the model's idle ONNX Runtime threads sleep instead of spinning (`trident export "
        "--no-ort-spinning`), leaving the CPU they would burn to the frontend",
    )
    args = parser.parse_args(argv)

    from ultralytics import YOLO

    from benchmarks.bench import (
        free_port,
        frontend_env,
        launch_frontend,
        local_settings,
        stop_on_sigterm,
        tree_cpu_s,
    )

    stop_on_sigterm()
    from core.slug import Slug
    from exporter.export import ExportRequest, export_model
    from exporter.triton_config import ServingOptions
    from store.keys import KeyStore
    from tests.helpers.models import build_busy_model
    from trident import runtime

    work = Path(tempfile.mkdtemp(prefix="trident-video-bench-"))
    video = write_video(work / "1080p.mp4", crops_1080p(args.frames))
    big = work / "noise.mp4"
    if not args.skip_rss:
        noise_1080p(args.big_mb * 1024 * 1024, big)
        print(f"RSS video: {big.stat().st_size / 2**20:.1f} MB", flush=True)
    print(f"video: {args.frames} frames 1920x1080, {video.stat().st_size / 2**20:.1f} MB", flush=True)
    settings = local_settings(Path(args.data_dir), work)
    pt = build_busy_model("yolo11n.yaml", work / "model.pt")
    options = ServingOptions(
        execution_env=str(settings.runtime_dir),
        ort_threads=args.ort_threads,
        ort_spinning=False if args.no_ort_spinning else None,
    )
    exported = export_model(
        ExportRequest(pt, Slug.parse(SLUG), work / "model_repository", visibility="public", options=options)
    )
    onnx = exported.path / "model.onnx"
    key = KeyStore(settings.key_store_url).create_key("bench", "bench")[0]
    with ExitStack() as cleanup:
        triton = runtime.start_triton(settings, work / "model_repository", work / "triton.log")
        cleanup.callback(runtime.stop, triton)
        runtime.wait_ready(settings, triton)
        port = free_port()
        env = frontend_env(settings, [f"TRIDENT_PORT={port}"])
        frontend = launch_frontend(ROOT, env, ["-m", "trident", "serve"], work, "frontend")
        cleanup.callback(runtime.stop, frontend)
        url = f"http://127.0.0.1:{port}/api/models/{SLUG}/predict"
        auth = {"Authorization": f"Bearer {key}"}
        fields = {"conf": str(args.conf), "iou": str(IOU)}
        boxes: list[int] = []  # detections a frame, from the untracked whole answers

        speeds: dict[str, list[dict[str, float]]] = {}

        def trident(path: Path, stream: bool = False, target: str = url, name: str = "", **extra: str) -> int:
            with path.open("rb") as f:
                files = {"file": (path.name, f)}
                data = {**fields, **extra}
                if not stream:
                    r = httpx.post(target, headers=auth, files=files, data=data, timeout=3600)
                    r.raise_for_status()
                    frames = r.json()["frames"]
                    if not name and "track" not in extra:
                        boxes.extend(len(f["predictions"]) for f in frames)
                else:
                    headers = {**auth, "Accept": "application/x-ndjson"}
                    with httpx.stream(
                        "POST", target, headers=headers, files=files, data=data, timeout=3600
                    ) as r:
                        r.raise_for_status()
                        *frames, last = [json.loads(line) for line in r.iter_lines() if line]
                    assert last.get("success") is True, last
            speeds.setdefault(name or ("trident-stream" if stream else "trident"), []).extend(
                f["speed"] for f in frames
            )
            return len(frames)

        model = YOLO(str(onnx))

        def ultralytics(path: Path) -> int:
            results = model.predict(str(path), stream=True, conf=args.conf, iou=IOU, verbose=False)
            return sum(1 for _ in results)

        deadline = time.monotonic() + 120
        while True:  # the frontend lists the model within a few seconds of starting
            try:
                trident(video, vid_stride=str(args.frames))
                break
            except (httpx.HTTPError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        ultralytics(video)  # warm: session created, first frames decoded
        systems = {
            "trident": lambda: trident(video),
            "trident-stream": lambda: trident(video, stream=True),
            "ultralytics": lambda: ultralytics(video),
        }
        if args.track:
            for tracker in ("bytetrack", "botsort"):
                systems[f"trident-{tracker}"] = lambda t=tracker: trident(
                    video, name=f"trident-{t}", track="true", tracker=t
                )

        def cpu_s() -> dict[str, float]:
            return {
                "frontend": tree_cpu_s(frontend.pid),
                "triton": tree_cpu_s(triton.pid),
                "this process": sum(os.times()[:2]),
            }

        before = batch_stats(settings.triton_http_port, exported.triton_name)
        fps: dict[str, list[float]] = {name: [] for name in systems}
        cpu_ms: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
        names = list(systems)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                cpu0, start = cpu_s(), time.perf_counter()
                frames = systems[name]()
                seconds = time.perf_counter() - start
                cpu1 = cpu_s()
                assert frames == args.frames, (name, frames)
                fps[name].append(frames / seconds)
                cpu_ms[name].append({k: (cpu1[k] - cpu0[k]) * 1000 / frames for k in cpu0})
                print(f"round {r + 1} {name:15s} {frames / seconds:6.2f} fps ({seconds:.1f} s)", flush=True)
        after = batch_stats(settings.triton_http_port, exported.triton_name)
        stage_ms = {
            name: {
                k: statistics.median(s[k] for s in values) for k in ("preprocess", "inference", "postprocess")
            }
            for name, values in speeds.items()
        }
        # peak memory on a fresh frontend: warmed by one small video, then the ~100 MB one
        rss_growth, frames_big = float("nan"), 0
        if not args.skip_rss:
            fresh_port = free_port()
            fresh = subprocess.Popen(
                [sys.executable, "-m", "trident", "serve"],
                env={**env, "TRIDENT_PORT": str(fresh_port)},
                stdout=(work / "frontend-rss.log").open("wb"),
                stderr=subprocess.STDOUT,
                cwd=work,
            )
            cleanup.callback(runtime.stop, fresh)
            fresh_url = f"http://127.0.0.1:{fresh_port}/api/models/{SLUG}/predict"
            deadline = time.monotonic() + 120
            while True:
                try:
                    trident(video, target=fresh_url, vid_stride=str(args.frames // 8))
                    break
                except (httpx.HTTPError, AssertionError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            rss_before = peak_rss_mb(fresh.pid)
            frames_big = trident(big, target=fresh_url, vid_stride=str(args.big_stride))
            rss_growth = peak_rss_mb(fresh.pid) - rss_before

    medians = {name: statistics.median(values) for name, values in fps.items()}
    print(
        f"\n{args.frames} frames 1920x1080 at conf {args.conf} ({statistics.mean(boxes):.0f} boxes a frame), "
        f"median of {args.rounds} interleaved rounds:"
    )
    for name, value in medians.items():
        print(
            f"  {name:15s} {value:6.2f} fps  ({value / medians['ultralytics']:.2f}x in-process Ultralytics)"
        )
    for name, runs in cpu_ms.items():
        per = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"  {name:15s} CPU ms per frame: "
            + ", ".join(f"{k} {v:.1f}" for k, v in per.items())
            + f" (total {sum(per.values()):.1f})"
        )
    if args.track:
        for tracker in ("bytetrack", "botsort"):
            cost = 1 - medians[f"trident-{tracker}"] / medians["trident"]
            print(f"  tracking with {tracker} costs {cost:.1%} of the frames per second of `trident`")
    for name, ms in stage_ms.items():
        print(f"  {name:15s} per-frame median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()))
    executions = {b: after.get(b, 0) - before.get(b, 0) for b in sorted(after)}
    print(f"Triton executions by batch size during the rounds: {executions}")
    if not args.skip_rss:
        print(
            f"frontend peak RSS growth serving a {big.stat().st_size / 2**20:.0f} MB video "
            f"({frames_big} frames processed at vid_stride {args.big_stride}) on a fresh frontend, "
            f"after a warm-up video: {rss_growth:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
