"""Trident against its floor and its peers, on this machine, in one interleaved run.

    .venv/bin/python benchmarks/bench.py                 # a few minutes; prints the table, writes JSON
    .venv/bin/python benchmarks/bench.py --rounds 9 --tput-seconds 6   # longer, tighter medians

It builds a YAML `yolo11n` made to find many boxes (so NMS costs what it costs on a real model),
exports it with Trident's exporter into a temporary repository, starts a local Triton and one
Trident frontend (this checkout's code) on free ports, and then, in rounds that rotate the order
of the systems so that machine drift hits all alike, measures:

- `floor`: Triton's own compute time (compute_input + compute_infer + compute_output from the
  statistics API) for the very request Trident sent, read as a per-request delta;
- `trident`: Trident end to end over HTTP, a multipart upload answered with JSON;
- `ultra_triton`: Ultralytics' own client, `YOLO("grpc://.../<model>").predict()`, on the same
  Triton model;
- `ultra_onnx`, `ultra_pt`: `YOLO(<the same model.onnx>).predict()` and `YOLO(<pt>).predict()` in
  this process.

Latency is measured at concurrency 1 (p50, p95) on each image; throughput at each `--concurrency`
for the two Triton-backed systems (threads, one connection or client each) and single-stream for
the in-process ones; for Trident also the CPU time per request of the frontend and of Triton
(its Python-backend stubs included), which bounds what two cores can serve. Finally the frontend
gets enough requests to have served `--rss-requests` in all and its worker's resident memory is
read. One table of ratios is printed, everything is written as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# `trident serve` under cProfile. uvicorn re-raises SIGTERM once it has shut down; it restores our
# handler first, so the profile is written then.
PROFILED_SERVE = """
import cProfile, signal, sys
from trident.cli import serve
profiler = cProfile.Profile()
def dump(*_):
    profiler.disable()
    profiler.dump_stats(sys.argv[1])
    sys.exit(0)
signal.signal(signal.SIGTERM, dump)
profiler.enable()
serve()
"""
PLANS = '{"bench": [100000000, 100000000]}'
SLUG = "bench/coco/yolo11n"


# --- the logic the tests cover: percentiles, summaries, ratios, the table -------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation (NumPy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency_summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p95_ms": round(percentile(samples_ms, 95), 3),
        "mean_ms": round(statistics.fmean(samples_ms), 3) if samples_ms else float("nan"),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratios(results: dict[str, Any], image: str, tput_concurrency: int) -> dict[str, float]:
    """Trident / floor and Trident / each peer at concurrency 1 (p50 latency: lower is better),
    and Trident's throughput at `tput_concurrency` / each peer's single-stream throughput
    (higher is better)."""
    lat = results["latency"][image]
    out: dict[str, float] = {}
    trident = lat["trident"]["p50_ms"]
    for system in ("floor", "ultra_triton", "ultra_onnx", "ultra_pt"):
        if system in lat and lat[system]["p50_ms"] > 0:
            out[f"trident_p50/{system}_p50"] = round(trident / lat[system]["p50_ms"], 3)
    tput = results["throughput"]
    ours = tput.get("trident", {}).get(str(tput_concurrency), {}).get("rps")
    if ours:
        for system in ("ultra_triton", "ultra_onnx", "ultra_pt"):
            single = tput.get(system, {}).get("1", {}).get("rps")
            if single:
                out[f"trident_rps@c{tput_concurrency}/{system}_rps@c1"] = round(ours / single, 3)
        peer = tput.get("ultra_triton", {}).get(str(tput_concurrency), {}).get("rps")
        if peer:
            out[f"trident_rps@c{tput_concurrency}/ultra_triton_rps@c{tput_concurrency}"] = round(
                ours / peer, 3
            )
    return out


def render_table(results: dict[str, Any]) -> str:
    """The printed report: latency per image, throughput per concurrency, ratios, memory."""
    lines = []
    systems = ("floor", "trident", "ultra_triton", "ultra_onnx", "ultra_pt")
    for image, lat in results["latency"].items():
        lines.append(f"latency at concurrency 1, {image} (ms)")
        lines.append(f"  {'system':<14}{'p50':>9}{'p95':>9}{'n':>6}")
        for system in systems:
            if system in lat:
                s = lat[system]
                lines.append(f"  {system:<14}{s['p50_ms']:>9.2f}{s['p95_ms']:>9.2f}{s['n']:>6}")
    tput = results["throughput"]
    levels = sorted({int(c) for by_c in tput.values() for c in by_c})
    lines.append("throughput (requests/s, median of rounds; p95 ms in brackets)")
    lines.append("  " + f"{'system':<14}" + "".join(f"{'c=' + str(c):>18}" for c in levels))
    for system in systems:
        if system not in tput:
            continue
        cells = []
        for c in levels:
            cell = tput[system].get(str(c))
            cells.append(f"{cell['rps']:>8.2f} ({cell['p95_ms']:>6.1f})" if cell else f"{'-':>17}")
        lines.append(f"  {system:<14}" + "".join(f"{c:>18}" for c in cells))
    lines.append("ratios (latency: lower is better; throughput: higher is better)")
    for image, image_ratios in results["ratios"].items():
        for name, value in image_ratios.items():
            lines.append(f"  {image:<11}{name:<46}{value:>8.3f}")
    for image, breakdown in results.get("trident_server_timing_ms", {}).items():
        parts = ", ".join(f"{k} {v:.2f}" for k, v in breakdown.items())
        lines.append(f"trident Server-Timing medians at c=1, {image} (ms): {parts}")
    for c, cpu in results.get("trident_cpu_ms_per_request", {}).items():
        parts = ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        lines.append(f"trident CPU per request at c={c} (ms, all cores): {parts}")
    rss = results.get("frontend_rss_mb")
    if rss is not None:
        lines.append(f"frontend worker RSS after {results['frontend_requests']} requests: {rss:.1f} MB")
    return "\n".join(lines)


# --- the systems ----------------------------------------------------------------------------------


def multipart(image: Path, fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body (built once; every client sends these same bytes)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{image.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = b"".join([*parts, head, image.read_bytes(), f"\r\n--{boundary}--\r\n".encode()])
    return body, f"multipart/form-data; boundary={boundary}"


class TridentClient:
    """A thin keep-alive HTTP/1.1 client: the client's own cost stays out of Trident's figures."""

    def __init__(self, port: int, key: str, bodies: dict[str, tuple[bytes, str]]) -> None:
        self.port, self.key, self.bodies = port, key, bodies
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.server_timing: list[str] = []

    def __call__(self, image: str) -> None:
        body, ctype = self.bodies[image]
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": ctype}
        for attempt in (1, 2):
            try:
                self.conn.request("POST", f"/api/models/{SLUG}/predict", body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()  # the server closed an idle keep-alive connection: reconnect once
                if attempt == 2:
                    raise
        if response.status != 200:
            raise RuntimeError(f"Trident answered {response.status}: {data[:300]!r}")
        self.server_timing.append(response.getheader("Server-Timing") or "")


def triton_stats(http_port: int, model: str) -> tuple[int, int]:
    """(successful inferences, compute_input + compute_infer + compute_output ns) so far."""
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    conn.request("GET", f"/v2/models/{model}/stats")
    stats = json.loads(conn.getresponse().read())["model_stats"][0]["inference_stats"]
    conn.close()
    ns = sum(int(stats[k]["ns"]) for k in ("compute_input", "compute_infer", "compute_output"))
    return int(stats["success"]["count"]), ns


@dataclass
class Stack:
    triton: subprocess.Popen[bytes]
    frontend: subprocess.Popen[bytes]
    port: int
    grpc_port: int
    http_port: int
    key: str
    triton_name: str
    onnx: Path
    pt: Path
    env: dict[str, str]  # the frontend's, for more frontends on the same Triton and key store


def local_settings(data_dir: Path, work: Path) -> Any:
    """Settings for a private stack: free ports, the runtime in `data_dir`, a key store in `work`."""
    from core.settings import Settings

    return Settings(
        port=free_port(),
        triton_grpc_port=free_port(),
        triton_http_port=free_port(),
        triton_metrics_port=free_port(),
        data_dir=data_dir.resolve(),
        database_url=f"sqlite:///{work / 'keys.db'}",
    )


def stop_on_sigterm() -> None:
    """SIGTERM (`timeout`, a closed terminal) unwinds like Ctrl-C, so the `ExitStack` that started
    Triton and the frontends stops them instead of leaving them running."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_stack(args: argparse.Namespace, work: Path, stack: ExitStack) -> Stack:
    from core.slug import Slug
    from exporter.export import ExportRequest, export_model
    from exporter.triton_config import ServingOptions
    from store.keys import KeyStore
    from tests.helpers.models import build_busy_model
    from trident import runtime

    settings = local_settings(Path(args.data_dir), work)
    pt = build_busy_model(args.model, work / "model.pt", cls_bias=args.cls_bias)
    repository = work / "model_repository"
    options = ServingOptions(
        max_batch=args.max_batch,
        instances=args.instances,
        queue_delay_us=args.queue_delay_us,
        compact_output=args.candidates,
        ort_threads=args.ort_threads,
        ort_spinning=args.ort_spinning,
        execution_env=str(settings.runtime_dir),
    )
    result = export_model(
        ExportRequest(
            pt,
            Slug.parse(SLUG),
            repository,
            imgsz=args.imgsz,
            dynamic=args.dynamic,
            visibility="public",
            options=options,
        )
    )
    onnx = work / "model.onnx"
    onnx.write_bytes((result.path / "model.onnx").read_bytes())
    key = KeyStore(settings.key_store_url).create_key("bench", "bench")[0]

    triton = runtime.start_triton(settings, repository, work / "triton.log")
    stack.callback(runtime.stop, triton)
    runtime.wait_ready(settings, triton)
    env = frontend_env(settings, args.frontend_env)
    serve = (
        ["-c", PROFILED_SERVE, str(Path(args.profile).resolve())]
        if args.profile
        else ["-m", "trident", "serve"]
    )
    frontend = launch_frontend(ROOT, env, serve, work, "frontend")
    stack.callback(runtime.stop, frontend)
    return Stack(
        triton, frontend, settings.port, settings.triton_grpc_port, settings.triton_http_port,
        key, result.triton_name, onnx, pt, env,
    )  # fmt: skip


def frontend_env(settings: Any, extra: list[str]) -> dict[str, str]:
    """The environment of a frontend on the stack's Triton and key store (its tree's code on
    `PYTHONPATH` is added by `launch_frontend`)."""
    return {
        **os.environ,
        "TRIDENT_PORT": str(settings.port),
        "TRIDENT_TRITON_GRPC_PORT": str(settings.triton_grpc_port),
        "TRIDENT_TRITON_HTTP_PORT": str(settings.triton_http_port),
        "TRIDENT_DATABASE_URL": settings.key_store_url,
        "TRIDENT_PLANS": PLANS,
        **dict(kv.split("=", 1) for kv in extra),
    }


def launch_frontend(
    tree: Path, env: dict[str, str], serve: list[str], work: Path, name: str, prefix: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """`python <serve>` in `work` running the code of `tree` (a checkout: this one, or the A/B
    base's worktree), optionally under a profiler (`prefix`); its output in `work/<name>.log`."""
    path = os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.Popen(
        [*prefix, sys.executable, *serve],
        env={**env, "PYTHONPATH": path},
        stdout=(work / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
        cwd=work,
    )


def wait_callable(call: Callable[[], None], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            call()
            return
        except (OSError, RuntimeError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def worker_rss_mb(pid: int) -> float:
    """Largest resident set among the frontend process and its descendants (uvicorn workers)."""
    best = 0.0
    for p in process_tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                best = max(best, int(line.split()[1]) / 1024)
    return best


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn workers; Triton's Python-backend stubs)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        if children.exists():
            for child in children.read_text().split():
                pids += process_tree(int(child))
    return pids


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and the descendants still running."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # it ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def stack_cpu_s(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by the frontend and by Triton (its Python-backend stubs included)."""
    return {"frontend": tree_cpu_s(stack.frontend.pid), "triton": tree_cpu_s(stack.triton.pid)}


def run_concurrent(
    make: Callable[[], Callable[[], None]], concurrency: int, seconds: float
) -> dict[str, float]:
    """`concurrency` threads, each with its own client, calling for `seconds` after one warm call."""
    clients = [make() for _ in range(concurrency)]
    for client in clients:
        client()
    latencies: list[list[float]] = [[] for _ in clients]
    errors: list[BaseException] = []
    start_gate = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def loop(i: int) -> None:
        start_gate.wait()
        try:
            while time.perf_counter() < stop_at[0]:
                t = time.perf_counter()
                clients[i]()
                latencies[i].append((time.perf_counter() - t) * 1000)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds
    begin = time.perf_counter()
    start_gate.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - begin
    if errors:
        raise errors[0]
    flat = [x for per in latencies for x in per]
    return {"rps": len(flat) / wall, "p95_ms": percentile(flat, 95), "n": len(flat)}


# --- where the frontend's CPU goes (`--stages`): py-spy samples, split by stage -------------------

# (stage, substrings of a py-spy frame "function (file:line)"): a sample belongs to the stage of its
# innermost frame that matches one, scanning from the leaf; NumPy, OpenCV and orjson run in C and
# show as the Python frame that called them.
STAGE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode", ("frontend/serving/imaging.py",)),
    ("letterbox", ("postprocess/letterbox.py",)),
    ("tensor prep", ("pipeline/prepare.py", "_decode_and_prepare (")),
    ("Triton call", ("frontend/serving/triton.py", "frontend/serving/shm.py", "tritonclient/", "grpc/")),
    ("output decode", ("pipeline/decode.py", "postprocess/", "frontend/serving/catalog.py")),
    (
        "rendering",
        ("pipeline/render_", "pipeline/formats.py", "pipeline/result.py"),
    ),
    ("JSON", ("frontend/formats.py", "orjson", "render (frontend/serving/inference.py")),
    (
        "auth + quota",
        ("frontend/guards/auth.py", "frontend/guards/ratelimit.py", "store/", "sqlalchemy/", "get_quota ("),
    ),
    (
        "HTTP + multipart",
        (
            "uvicorn/", "httptools", "h11/", "starlette/", "fastapi/", "multipart/", "email/", "urllib/",
            "prometheus_client/", "frontend/", "get_caller (",
        ),
    ),
    (
        "event loop + thread hops",
        ("asyncio/", "anyio/", "threading.py", "concurrent/", "uvloop", "queue.py", "selectors.py"),
    ),
)  # fmt: skip
STAGES = (*(stage for stage, _ in STAGE_RULES), "other", "background")
STARTUP_MARKERS = ("<frozen importlib", "lifespan (frontend/app.py")  # startup and shutdown: left out
# the app's periodic work, whatever it calls: flushes, the model index, deployments, stream leases
BACKGROUND_MARKERS = (
    "_every (frontend/app.py", "_flush (frontend/app.py", "Telemetry.flush", "ModelLoader.", "Streams.",
    "StreamStore.", "Lifecycle.", "DeploymentStore.", "_reconcile (",
)  # fmt: skip
# a pool thread at its queue: woken and runnable, not working (py-spy counts runnable threads)
WAITING = ("Condition.wait (threading.py",)


def stage_of(frames: list[str]) -> str | None:
    """The stage of one sampled stack (root first), or None for startup, shutdown and a pool
    thread waiting at its queue."""
    if any(marker in frame for frame in frames for marker in STARTUP_MARKERS) or any(
        w in frames[-1] for w in WAITING
    ):
        return None
    if any(marker in frame for frame in frames for marker in BACKGROUND_MARKERS):
        return "background"
    for frame in reversed(frames):
        for stage, needles in STAGE_RULES:
            if any(needle in frame for needle in needles):
                return stage
    return "other"


def stage_samples(collapsed: str) -> dict[str, int]:
    """Samples per stage from py-spy's raw (collapsed) output: `frame;frame;... count` lines."""
    counts = dict.fromkeys(STAGES, 0)
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        stage = stage_of(stack.split(";"))
        if stage is not None:
            counts[stage] += int(n)
    return counts


def stage_table(profiles: dict[str, dict[str, Any]]) -> str:
    """Markdown: per stage, its share of the sampled CPU and the ms of CPU per request it makes
    at each concurrency (the share times the frontend's measured CPU per request)."""
    levels = list(profiles)
    head = "| stage | " + " | ".join(f"c={c}: share | c={c}: ms/request" for c in levels) + " |"
    lines = [head, "|---" * (1 + 2 * len(levels)) + "|"]
    for stage in STAGES:
        cells = []
        for c in levels:
            counts, cpu = profiles[c]["samples"], profiles[c]["cpu_ms_per_request"]
            share = counts[stage] / max(1, sum(counts.values()))
            cells += [f"{share * 100:.1f} %", f"{share * cpu:.2f}"]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    totals = [
        f"{sum(profiles[c]['samples'].values())} samples | {profiles[c]['cpu_ms_per_request']:.2f}"
        for c in levels
    ]
    lines.append("| **all** (measured from /proc) | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def child_pid(pid: int, timeout_s: float = 30) -> int:
    """The first child of `pid` (the frontend under py-spy), once it exists."""
    deadline = time.monotonic() + timeout_s
    while len(tree := process_tree(pid)) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("py-spy started no frontend")
        time.sleep(0.1)
    return tree[1]


def profile_stages(
    args: argparse.Namespace, stack: Stack, work: Path, bodies: dict[str, tuple[bytes, str]]
) -> dict[str, Any]:
    """For each `--stages-concurrency` level: a fresh frontend of this checkout under `py-spy
    record`, warmed up, then `--tput-seconds` x `--tput-rounds` of load on the first image; the CPU per
    request from /proc of the frontend, the samples split by stage."""
    import shutil
    import signal

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    folder = Path(args.stages)
    folder.mkdir(parents=True, exist_ok=True)
    profiles: dict[str, dict[str, Any]] = {}
    for c in args.stages_concurrency:
        port, raw = free_port(), folder / f"c{c}.txt"
        record = (
            py_spy,
            "record",
            "--format",
            "raw",
            "--rate",
            str(args.stages_rate),
            "--nonblocking",
            "-o",
            str(raw),
            "--",
        )
        env = {**stack.env, "TRIDENT_PORT": str(port)}
        spy = launch_frontend(ROOT, env, ["-m", "trident", "serve"], work, f"py-spy-c{c}", record)
        try:
            pid = child_pid(spy.pid)
            probe = TridentClient(port, stack.key, bodies)
            wait_callable(lambda: probe(args.images[0]))  # noqa: B023 (called at once)
            for _ in range(20):
                probe(args.images[0])
            cpu0, count0 = tree_cpu_s(pid), triton_stats(stack.http_port, stack.triton_name)[0]
            for _ in range(args.tput_rounds):
                run_concurrent(make_client(port, stack.key, bodies, args.images[0]), c, args.tput_seconds)
            served = triton_stats(stack.http_port, stack.triton_name)[0] - count0
            cpu_ms = (tree_cpu_s(pid) - cpu0) * 1000 / max(1, served)
            os.kill(pid, signal.SIGTERM)
            spy.wait(timeout=120)  # py-spy writes its file when the frontend has ended
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        profiles[str(c)] = {
            "cpu_ms_per_request": round(cpu_ms, 2),
            "requests": served,
            "samples": stage_samples(raw.read_text()),
        }
        print(f"profiled c={c}: {served} requests, {cpu_ms:.2f} ms of frontend CPU each", file=sys.stderr)
    return profiles


def make_client(
    port: int, key: str, bodies: dict[str, tuple[bytes, str]], image: str
) -> Callable[[], Callable[[], None]]:
    """A factory of keep-alive clients that each send `image` (one per `run_concurrent` thread)."""

    def make() -> Callable[[], None]:
        client = TridentClient(port, key, bodies)
        return lambda: client(image)

    return make


# --- this checkout against an earlier commit (`--ab-base`), interleaved ---------------------------


def ab_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's figures on one image over the rounds: CPU per request (median and range of the
    rounds' figures: the noise), latency p50/p95 over all requests, Triton's compute p50, and the
    ratio p50 / compute."""
    cpu = [r["cpu_ms"] for r in rounds]
    lat = [x for r in rounds for x in r["latency_ms"]]
    floor = [x for r in rounds for x in r["floor_ms"]]
    p50, compute = percentile(lat, 50), percentile(floor, 50)
    return {
        "cpu_ms_per_request": round(median(cpu), 2),
        "cpu_ms_min": round(min(cpu), 2),
        "cpu_ms_max": round(max(cpu), 2),
        "p50_ms": round(p50, 2),
        "p95_ms": round(percentile(lat, 95), 2),
        "triton_compute_p50_ms": round(compute, 2),
        "p50_over_compute": round(p50 / compute, 3) if compute > 0 else float("nan"),
        "requests": len(lat),
    }


def ab_table(summary: dict[str, dict[str, dict[str, Any]]], base: str) -> str:
    """Markdown: each image, each side, and this checkout over the base."""
    lines = [
        "| image | side | frontend CPU ms/request (rounds' range) | p50 ms | p95 ms "
        "| Triton compute p50 ms | p50 / compute |",
        "|---|---|---|---|---|---|---|",
    ]
    for image, sides in summary.items():
        for side, s in sides.items():
            name = f"base ({base})" if side == "base" else "this"
            cpu = f"{s['cpu_ms_per_request']:.2f} ({s['cpu_ms_min']:.2f}-{s['cpu_ms_max']:.2f})"
            lines.append(
                f"| {image} | {name} | {cpu} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} "
                f"| {s['triton_compute_p50_ms']:.2f} | {s['p50_over_compute']:.3f} |"
            )
        if {"base", "this"} <= set(sides):
            cpu = sides["this"]["cpu_ms_per_request"] / sides["base"]["cpu_ms_per_request"]
            p50 = sides["this"]["p50_ms"] / sides["base"]["p50_ms"]
            lines.append(f"| {image} | this / base | {cpu:.3f} | {p50:.3f} | | | |")
    return "\n".join(lines)


def base_worktree(rev: str, folder: Path) -> Path:
    """`rev` checked out (detached) into a temporary git worktree of this repository."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), rev],
        check=True,
        capture_output=True,
    )
    return folder


def ab_run(
    args: argparse.Namespace, stack: Stack, work: Path, bodies: dict[str, tuple[bytes, str]]
) -> dict[str, Any]:
    """Two frontends on the same Triton and key store, `base` from `--ab-base`'s tree and `this`
    from this checkout, measured in alternating order round after round: per round, side and image,
    `--ab-requests` requests one at a time, the frontend's CPU over them from /proc and each one's
    latency and Triton compute."""
    from trident import runtime

    tree = base_worktree(args.ab_base, work / "base")
    fronts: dict[str, tuple[subprocess.Popen[bytes], TridentClient]] = {}
    try:
        for side, root in (("base", tree), ("this", ROOT)):
            port = free_port()
            env = {**stack.env, "TRIDENT_PORT": str(port)}
            process = launch_frontend(root, env, ["-m", "trident", "serve"], work, f"frontend-{side}")
            fronts[side] = (process, TridentClient(port, stack.key, bodies))
        for _, client in fronts.values():
            wait_callable(lambda: client(args.images[0]))  # noqa: B023 (called at once)
            for image in args.images * 10:
                client(image)
        rounds: dict[str, dict[str, list[dict[str, Any]]]] = {
            im: {"base": [], "this": []} for im in args.images
        }
        for r in range(args.rounds):
            order = ["base", "this"] if r % 2 == 0 else ["this", "base"]
            for side in order:
                process, client = fronts[side]
                for image in args.images:
                    client(image)  # untimed: the connection and caches warm after the other side
                    latency, floor = [], []
                    cpu0 = tree_cpu_s(process.pid)
                    for _ in range(args.ab_requests):
                        count0, ns0 = triton_stats(stack.http_port, stack.triton_name)
                        t = time.perf_counter()
                        client(image)
                        latency.append((time.perf_counter() - t) * 1000)
                        count1, ns1 = triton_stats(stack.http_port, stack.triton_name)
                        if count1 - count0 == 1:
                            floor.append((ns1 - ns0) / 1e6)
                    cpu_ms = (tree_cpu_s(process.pid) - cpu0) * 1000 / args.ab_requests
                    rounds[image][side].append({"cpu_ms": cpu_ms, "latency_ms": latency, "floor_ms": floor})
            print(f"A/B round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for process, client in fronts.values():
            client.conn.close()
            runtime.stop(process)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )
    return {image: {side: ab_summary(r) for side, r in sides.items()} for image, sides in rounds.items()}


def cpu_main(args: argparse.Namespace) -> int:
    """`--stages` and `--ab-base`: the stack alone (no peers), then the profile or the A/B."""
    from ultralytics.utils import ASSETS

    images = {name: Path(ASSETS) / name for name in args.images}
    fields = {"conf": "0.25", "iou": "0.45", "imgsz": str(args.imgsz)}
    bodies = {name: multipart(path, fields) for name, path in images.items()}
    work = Path(tempfile.mkdtemp(prefix="trident-bench-"))
    results: dict[str, Any] = {
        "meta": {"when": datetime.now(UTC).isoformat(timespec="seconds"), "args": vars(args)}
    }
    with ExitStack() as cleanup:
        stack = start_stack(args, work, cleanup)
        probe = TridentClient(stack.port, stack.key, bodies)
        wait_callable(lambda: probe(args.images[0]))
        probe.conn.close()
        stack.frontend.terminate()  # each mode starts its own frontends
        stack.frontend.wait(timeout=60)
        if args.stages:
            results["stages"] = profile_stages(args, stack, work, bodies)
            print(f"frontend CPU by stage, {args.images[0]} (py-spy, {args.stages_rate} Hz)")
            print(stage_table(results["stages"]))
        if args.ab_base:
            results["ab"] = ab_run(args, stack, work, bodies)
            rounds = f"{args.rounds} interleaved rounds of {args.ab_requests} requests"
            print(f"A/B, {rounds} per side and image, c=1")
            print(ab_table(results["ab"], args.ab_base))
    return finish(args, results, work, "cpu-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="yolo11n.yaml", help="Ultralytics YAML (built, untrained)")
    parser.add_argument(
        "--cls-bias",
        type=float,
        default=-4.0,
        help="class-logit bias of the built model: -4 finds ~2,400 candidates at conf 0.25 on bus.jpg",
    )
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--queue-delay-us", type=int, default=0)
    parser.add_argument(
        "--candidates",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the backend returns only the anchors that can pass conf (trident_candidates)",
    )
    parser.add_argument("--ort-threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    parser.add_argument(
        "--ort-spinning",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether ONNX Runtime's idle intra-op threads spin (default: ONNX Runtime's, yes)",
    )
    parser.add_argument("--images", nargs="+", default=["bus.jpg", "zidane.jpg"])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--latency-requests", type=int, default=8, help="per system, image and round")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--tput-rounds", type=int, default=3)
    parser.add_argument("--tput-seconds", type=float, default=3.0, help="per system, level and round")
    parser.add_argument("--rss-requests", type=int, default=2000)
    parser.add_argument("--skip", nargs="*", default=[], help="systems to leave out (e.g. ultra_pt)")
    parser.add_argument("--frontend-env", nargs="*", default=[], help="KEY=VALUE for the frontend")
    parser.add_argument("--data-dir", default=".trident", help="where the local Triton runtime lives")
    parser.add_argument("--out", default=None, help="JSON path (default: <data-dir>/bench/<time>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--profile", default=None, help="cProfile the frontend's main thread into this file")
    parser.add_argument(
        "--stages",
        default=None,
        metavar="DIR",
        help="profile the frontend with py-spy at each --stages-concurrency (raw samples into DIR) "
        "and print its CPU per request split by stage; no peers",
    )
    parser.add_argument("--stages-concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--stages-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--ab-base",
        default=None,
        metavar="REV",
        help="A/B: this checkout's frontend against REV's (a temporary git worktree), same Triton, "
        "--rounds interleaved rounds at c=1; no peers",
    )
    parser.add_argument("--ab-requests", type=int, default=20, help="per side, image and A/B round")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    if args.stages or args.ab_base:
        import cv2

        return cpu_main(args)

    import cv2  # noqa: F401  (imported before torch: the order Ultralytics uses)
    from ultralytics import YOLO
    from ultralytics.utils import ASSETS

    images = {name: Path(ASSETS) / name for name in args.images}
    conf, iou = "0.25", "0.45"
    work = Path(tempfile.mkdtemp(prefix="trident-bench-"))
    started = time.perf_counter()
    with ExitStack() as cleanup:
        stack = start_stack(args, work, cleanup)
        bodies = {
            name: multipart(path, {"conf": conf, "iou": iou, "imgsz": str(args.imgsz)})
            for name, path in images.items()
        }
        sent = [0]
        sent_lock = threading.Lock()

        def trident_client() -> Callable[[], None]:
            client = TridentClient(stack.port, stack.key, bodies)
            image = args.images[0]

            def call() -> None:
                client(image)
                with sent_lock:
                    sent[0] += 1

            return call

        probe = TridentClient(stack.port, stack.key, bodies)
        wait_callable(lambda: probe(args.images[0]))
        grpc_url = f"grpc://127.0.0.1:{stack.grpc_port}/{stack.triton_name}"
        kwargs = {"conf": float(conf), "iou": float(iou), "imgsz": args.imgsz, "verbose": False}

        def ultra(weights: str) -> Callable[[str], None]:
            model = YOLO(weights, task="detect")
            return lambda image: model.predict(str(images[image]), **kwargs) and None

        peers: dict[str, Callable[[str], None]] = {}
        for system, weights in (
            ("ultra_triton", grpc_url),
            ("ultra_onnx", str(stack.onnx)),
            ("ultra_pt", str(stack.pt)),
        ):
            if system not in args.skip:
                peers[system] = ultra(weights)
        for call in peers.values():  # warm-up (model load, first-run allocation)
            for image in args.images:
                call(image)
                call(image)

        lat: dict[str, dict[str, list[float]]] = {im: {} for im in args.images}
        floor_ns: dict[str, list[float]] = {im: [] for im in args.images}
        timings: dict[str, list[str]] = {im: [] for im in args.images}  # the timed requests' only
        order = ["trident", *peers]
        for r in range(args.rounds):
            rotated = order[r % len(order) :] + order[: r % len(order)]
            for system in rotated:
                if system == "trident":  # untimed: reopens the connection, warms caches after the others
                    probe(args.images[0])
                    sent[0] += 1
                else:
                    peers[system](args.images[0])
                for i in range(args.latency_requests * len(args.images)):
                    image = args.images[i % len(args.images)]
                    if system == "trident":
                        count0, ns0 = triton_stats(stack.http_port, stack.triton_name)
                        t = time.perf_counter()
                        probe(image)
                        elapsed = (time.perf_counter() - t) * 1000
                        sent[0] += 1
                        count1, ns1 = triton_stats(stack.http_port, stack.triton_name)
                        timings[image].append(probe.server_timing[-1])
                        if count1 - count0 == 1:
                            floor_ns[image].append((ns1 - ns0) / 1e6)
                    else:
                        t = time.perf_counter()
                        peers[system](image)
                        elapsed = (time.perf_counter() - t) * 1000
                    lat[image].setdefault(system, []).append(elapsed)
            print(f"latency round {r + 1}/{args.rounds} done", file=sys.stderr)

        def triton_peer() -> Callable[[], None]:
            model = YOLO(grpc_url, task="detect")
            image = str(images[args.images[0]])
            return lambda: model.predict(image, **kwargs) and None

        def in_process(system: str) -> Callable[[], Callable[[], None]]:
            image = args.images[0]
            return lambda: lambda: peers[system](image)

        makers: dict[str, Callable[[], Callable[[], None]]] = {"trident": trident_client}
        if "ultra_triton" in peers:
            makers["ultra_triton"] = triton_peer
        tput_runs: dict[str, dict[int, list[dict[str, float]]]] = {}
        cpu_runs: dict[int, list[dict[str, float]]] = {}  # trident: CPU ms per request, by process
        for r in range(args.tput_rounds):
            for c in args.concurrency:
                systems = list(makers) if r % 2 == 0 else list(reversed(makers))
                for system in systems:
                    if system == "trident":
                        count0, cpu0 = triton_stats(stack.http_port, stack.triton_name)[0], stack_cpu_s(stack)
                    run = run_concurrent(makers[system], c, args.tput_seconds)
                    tput_runs.setdefault(system, {}).setdefault(c, []).append(run)
                    if system == "trident":
                        served = triton_stats(stack.http_port, stack.triton_name)[0] - count0
                        cpu1 = stack_cpu_s(stack)
                        if served > 0:
                            cpu_runs.setdefault(c, []).append(
                                {k: (cpu1[k] - cpu0[k]) * 1000 / served for k in cpu0}
                            )
            for system in ("ultra_onnx", "ultra_pt"):
                if system in peers:
                    run = run_concurrent(in_process(system), 1, args.tput_seconds)
                    tput_runs.setdefault(system, {}).setdefault(1, []).append(run)
            print(f"throughput round {r + 1}/{args.tput_rounds} done", file=sys.stderr)

        remaining = args.rss_requests - sent[0]
        if remaining > 0:
            clients = [TridentClient(stack.port, stack.key, bodies) for _ in range(8)]

            def drain(client: TridentClient, n: int) -> None:
                for _ in range(n):
                    client(args.images[0])

            threads = [
                threading.Thread(target=drain, args=(cl, remaining // 8 + (i < remaining % 8)))
                for i, cl in enumerate(clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sent[0] += remaining
        rss = worker_rss_mb(stack.frontend.pid)

    results: dict[str, Any] = {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "processor": platform.processor(),
                "python": sys.version.split()[0],
            },
            "args": vars(args),
            "seconds": round(time.perf_counter() - started, 1),
        },
        "latency": {
            image: {
                **({"floor": latency_summary(floor_ns[image])} if floor_ns[image] else {}),
                **{system: latency_summary(samples) for system, samples in by_system.items()},
            }
            for image, by_system in lat.items()
        },
        "throughput": {
            system: {
                str(c): {
                    "rps": round(median([x["rps"] for x in runs]), 3),
                    "p95_ms": round(median([x["p95_ms"] for x in runs]), 2),
                    "rounds": len(runs),
                }
                for c, runs in by_c.items()
            }
            for system, by_c in tput_runs.items()
        },
        "trident_server_timing_ms": {image: server_timing_medians(t) for image, t in timings.items()},
        "trident_cpu_ms_per_request": {
            str(c): {k: round(median([run[k] for run in runs]), 1) for k in ("frontend", "triton")}
            for c, runs in cpu_runs.items()
        },
        "frontend_requests": sent[0],
        "frontend_rss_mb": round(rss, 1),
    }
    tput_c = 8 if 8 in args.concurrency else max(args.concurrency)
    results["ratios"] = {image: ratios(results, image, tput_c) for image in args.images}
    print(render_table(results))
    return finish(args, results, work)


def finish(args: argparse.Namespace, results: dict[str, Any], work: Path, prefix: str = "") -> int:
    """The JSON written (`--out`, or `<data-dir>/bench/<prefix><time>.json`), the work folder
    removed unless `--keep`."""
    out = Path(args.out) if args.out else Path(args.data_dir) / "bench" / f"{prefix}{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"JSON: {out}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder: {work}")
    return 0


def server_timing_medians(headers: list[str]) -> dict[str, float]:
    """Median of each `name;dur=ms` entry over the Server-Timing headers."""
    values: dict[str, list[float]] = {}
    for header in headers:
        for part in header.split(","):
            name, _, dur = part.strip().partition(";dur=")
            if dur:
                values.setdefault(name, []).append(float(dur))
    return {name: round(median(v), 3) for name, v in values.items()}


if __name__ == "__main__":
    sys.exit(main())
