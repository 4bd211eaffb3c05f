"""A deployment's first request after it starts, against its steady state (issue 17: at most 1.5x).

    .venv/bin/python benchmarks/deployment_first_request.py            # about two minutes
    .venv/bin/python benchmarks/deployment_first_request.py --cycles 5 --steady 50

It builds the busy YAML `yolo11n` of `bench.py`, exports it (with the exporter's `model_warmup`),
starts a local Triton and one frontend on free ports, creates a deployment and then, `--cycles`
times: stops it, starts it (the update answers once the model is loaded, warmed and has answered a
probe), sends one predict at once (the first request) and then `--steady` predicts one after
another. It prints each first request, the steady-state median and their ratio, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench import start_stack  # noqa: E402

GOAL = 1.5


def wait_until(check: Callable[[], bool], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done after {timeout_s} s")
        time.sleep(0.3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=3, help="stop/start cycles")
    parser.add_argument("--steady", type=int, default=30, help="sequential requests after each first one")
    parser.add_argument("--image", default=str(ROOT / "tests" / "fixtures" / "tiny.png"))
    parser.add_argument("--data-dir", default=str(ROOT / ".trident"), help="holds the Triton runtime")
    parser.add_argument("--json", default="", help="write the figures here too")
    args = parser.parse_args(argv)
    # what `bench.start_stack` reads, at bench.py's defaults
    stack_args = argparse.Namespace(
        data_dir=args.data_dir, model="yolo11n.yaml", cls_bias=-4.0, max_batch=8, instances=1,
        queue_delay_us=0, candidates=True, ort_threads=0, ort_spinning=None, imgsz=640, dynamic=False,
        frontend_env=[], profile="",
    )  # fmt: skip
    image = Path(args.image).read_bytes()
    with ExitStack() as cleanup, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stack = start_stack(stack_args, work, cleanup)
        base = f"http://127.0.0.1:{stack.port}"
        from store.keys import KeyStore

        store = KeyStore(f"sqlite:///{work / 'keys.db'}")
        key = store.create_key("bench", "bench", scopes=("predict", "deployments"))[0]
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300)
        owner, project, model = stack.triton_name.split("~")
        deployment = f"/api/deployments/{owner}/bench"

        def ready() -> bool:
            return bool(client.get(deployment).json().get("deployment", {}).get("status") == "ready")

        def predict() -> float:
            start = time.perf_counter()
            r = client.post(f"{deployment}/predict", files={"file": ("image.png", image)})
            elapsed = (time.perf_counter() - start) * 1000
            assert r.status_code == 200, r.text
            return elapsed

        wait_until(lambda: client.get("/readyz").status_code == 200)
        created = client.post(
            f"/api/deployments/{owner}",
            json={"project": project, "model": model, "deployment": "bench", "name": "bench", "region": "us"},
        )
        assert created.status_code == 200, created.text
        wait_until(ready)
        firsts: list[float] = []
        steady: list[float] = []
        for cycle in range(args.cycles):
            for action in ("stop", "start"):
                r = client.patch(deployment, json={"action": action})
                assert r.status_code == 200, r.text
            firsts.append(predict())
            runs = [predict() for _ in range(args.steady)]
            steady += runs
            print(
                f"cycle {cycle + 1}: first {firsts[-1]:.1f} ms, then median {statistics.median(runs):.1f} ms"
            )
        median = statistics.median(steady)
        worst = max(firsts)
        print(f"first request after start: median {statistics.median(firsts):.1f} ms, worst {worst:.1f} ms")
        print(f"steady-state median: {median:.1f} ms")
        print(f"worst first / steady median: {worst / median:.2f}x (goal <= {GOAL}x)")
        if args.json:
            figures = {"first_ms": firsts, "steady_median_ms": median, "ratio_worst": worst / median}
            Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
