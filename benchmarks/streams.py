"""Camera streams on this machine: do 4 streams at `max_fps=5` keep up, and does memory stay flat?

    PYTHONPATH=$PWD .venv/bin/python benchmarks/streams.py [--duration-s 60] [--streams 4]
        [--max-fps 5] [--camera-fps 15] [--soak-s 600]

It exports the demo detection model of moving shapes (`demo/shapes/detect`, 320) into a private
stack (a local Triton and one frontend on free ports, loopback sources allowed), starts `--streams`
MJPEG cameras on loopback (`tests.helpers.camera`, each playing a generated clip of shapes at
`--camera-fps`), defines one stream per camera at `--max-fps`, follows each stream's events
(Server-Sent Events) for `--duration-s` after a 5 s warm-up, and prints per stream and in all:

- processed fps (events received / seconds) against the `max_fps` asked;
- frames read and dropped (a camera faster than `max_fps`: most frames are skipped, by design);
- lag from capture to result (each event's `lag_ms`): p50, p95, max;
- the frontend's resident memory (VmRSS) at the start and end; with `--soak-s` the run lasts that
  long and RSS is also printed every minute.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SLUG = "bench/shapes/detect"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Follower(threading.Thread):
    """One stream's events, their lag recorded from `start_at` on."""

    def __init__(self, base: str, key: str, stream: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{base}/api/streams/{stream}/events"
        self.key = key
        self.lags: list[float] = []
        self.counting = False
        self.stop = False

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.stream("GET", self.url, headers=headers, timeout=httpx.Timeout(30, read=60)) as r:
            event = ""
            for line in r.iter_lines():
                if self.stop:
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "frame" and self.counting:
                    self.lags.append(float(orjson.loads(line[6:])["lag_ms"]))


def counts(base: str, auth: dict[str, str], stream: str) -> dict[str, int]:
    frames: dict[str, int] = httpx.get(f"{base}/api/streams/{stream}", headers=auth).json()["frames"]
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--max-fps", type=float, default=5.0)
    parser.add_argument("--camera-fps", type=float, default=15.0)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--soak-s", type=float, default=0.0, help="run this long instead, RSS every minute")
    parser.add_argument("--data-dir", default=".trident", help="where the local Triton runtime lives")
    args = parser.parse_args(argv)
    duration = args.soak_s or args.duration_s

    from benchmarks.bench import free_port, launch_frontend, local_settings, stop_on_sigterm

    stop_on_sigterm()
    from core.slug import Slug
    from demo.models import weights
    from demo.train import RECIPES
    from exporter.export import ExportRequest, export_model
    from exporter.triton_config import ServingOptions
    from store.keys import KeyStore
    from tests.helpers.camera import MjpegCamera
    from tests.helpers.clips import read_frames, write_clip
    from trident import runtime

    work = Path(tempfile.mkdtemp(prefix="trident-streams-bench-"))
    settings = local_settings(Path(args.data_dir), work)
    recipe = RECIPES["shapes-detect"]
    options = ServingOptions(execution_env=str(settings.runtime_dir))
    export_model(
        ExportRequest(
            weights(recipe),
            Slug.parse(SLUG),
            work / "model_repository",
            imgsz=recipe.imgsz,
            visibility="public",
            options=options,
        )
    )
    key = KeyStore(settings.key_store_url).create_key("bench", "bench", scopes=("predict", "streams"))[0]
    auth = {"Authorization": f"Bearer {key}"}
    with ExitStack() as cleanup:
        triton = runtime.start_triton(settings, work / "model_repository", work / "triton.log")
        cleanup.callback(runtime.stop, triton)
        runtime.wait_ready(settings, triton)
        port = free_port()
        env = {
            **os.environ,
            "TRIDENT_PORT": str(port),
            "TRIDENT_TRITON_GRPC_PORT": str(settings.triton_grpc_port),
            "TRIDENT_TRITON_HTTP_PORT": str(settings.triton_http_port),
            "TRIDENT_DATABASE_URL": settings.key_store_url,
            "TRIDENT_SOURCE_ALLOW_PRIVATE": "true",
            "TRIDENT_STREAMS_PER_KEY": str(args.streams),
        }
        frontend = launch_frontend(ROOT, env, ["-m", "trident", "serve"], work, "frontend")
        cleanup.callback(runtime.stop, frontend)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the frontend did not become ready; see " + str(work / "frontend.log"))
            time.sleep(0.5)

        clip = write_clip("detect", work / "clip.mp4", frames=48)
        frames = read_frames(clip)
        print(
            f"{args.streams} MJPEG cameras on loopback, {frames[0].shape[1]}x{frames[0].shape[0]} "
            f"at {args.camera_fps:g} fps; streams at max_fps={args.max_fps:g}; model {SLUG} "
            f"(demo shapes-detect, imgsz {recipe.imgsz}); {os.cpu_count()} CPUs",
            flush=True,
        )
        streams, followers = [], []
        for _ in range(args.streams):
            camera = MjpegCamera(frames, args.camera_fps)
            camera.start()
            cleanup.callback(camera.stop)
            r = httpx.post(
                f"{base}/api/streams",
                headers=auth,
                json={"model": SLUG, "source": camera.url, "max_fps": args.max_fps},
                timeout=30,
            )
            r.raise_for_status()
            streams.append(r.json()["id"])
        for stream in streams:
            follower = Follower(base, key, stream)
            follower.start()
            followers.append(follower)
        time.sleep(5)  # warm-up: connected, first inferences done
        start_counts = {
            s: httpx.get(f"{base}/api/streams/{s}", headers=auth).json()["frames"] for s in streams
        }
        rss_start = rss_mb(frontend.pid)
        print(f"frontend RSS at start: {rss_start:.1f} MB", flush=True)
        for f in followers:
            f.counting = True
        began = time.monotonic()
        next_print = began + 60
        while (now := time.monotonic()) < began + duration:
            time.sleep(min(1.0, began + duration - now))
            if args.soak_s and time.monotonic() >= next_print:
                print(f"  t={time.monotonic() - began:5.0f} s  RSS {rss_mb(frontend.pid):.1f} MB", flush=True)
                next_print += 60
        elapsed = time.monotonic() - began
        for f in followers:
            f.counting = False
            f.stop = True
        rss_end = rss_mb(frontend.pid)
        end_counts = {s: counts(base, auth, s) for s in streams}

        print(f"\nover {elapsed:.0f} s:")
        print(f"{'stream':<22} {'fps':>6} {'read':>6} {'dropped':>8}   lag p50  lag p95  lag max")
        lags: list[float] = []
        total = 0
        for stream, follower in zip(streams, followers, strict=True):
            got = list(follower.lags)
            lags += got
            total += len(got)
            read = end_counts[stream]["read"] - start_counts[stream]["read"]
            dropped = end_counts[stream]["dropped"] - start_counts[stream]["dropped"]
            p50, p95 = np.percentile(got, [50, 95]) if got else (0, 0)
            print(
                f"{stream:<22} {len(got) / elapsed:6.2f} {read:6d} {dropped:8d} "
                f"{p50:6.0f}ms {p95:6.0f}ms {max(got, default=0):6.0f}ms"
            )
        p50, p95 = np.percentile(lags, [50, 95]) if lags else (0, 0)
        print(
            f"{'all':<22} {total / elapsed:6.2f} (asked {args.max_fps * args.streams:g})"
            f"  lag p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(lags, default=0):.0f} ms"
        )
        print(f"frontend RSS: start {rss_start:.1f} MB, end {rss_end:.1f} MB ({rss_end - rss_start:+.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
