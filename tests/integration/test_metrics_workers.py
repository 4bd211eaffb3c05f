"""With several uvicorn workers, /metrics adds up every worker's counts, whichever one answers."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.stack import Stack, free_port

pytestmark = pytest.mark.integration
SLUG = "test/coco/yolo11n"
IMAGE = Path(__file__).parents[1] / "fixtures" / "tiny.png"
OK = {"model": SLUG, "task": "detect", "status": "200", "plan": "test"}  # the stack key's plan


@pytest.fixture(scope="module")
def two_workers(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("workers")
    metrics_dir = root / "prometheus"
    port = free_port()
    env = {
        **stack.env,
        "TRIDENT_PORT": str(port),
        "TRIDENT_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    log = root / "frontend.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "trident", "serve"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _predict_ok(url, stack.api_key):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        yield url, metrics_dir, stack.api_key
    finally:
        process.terminate()
        process.wait(30)


def _predict_ok(url: str, key: str) -> bool:
    try:
        return _predict(url, key) == 200
    except httpx.TransportError:
        return False


def _predict(url: str, key: str) -> int:
    with IMAGE.open("rb") as f:  # one connection per call: the kernel spreads them over the workers
        r = httpx.post(
            f"{url}/api/models/{SLUG}/predict",
            headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            files={"file": (IMAGE.name, f)},
            timeout=60,
        )
    return r.status_code


def per_worker(metrics_dir: Path, tmp: Path) -> dict[str, float]:
    """Successful predicts counted by each worker process (its own counter file)."""
    counts = {}
    for db in metrics_dir.glob("counter_*.db"):
        alone = tmp / db.stem
        alone.mkdir(exist_ok=True)
        shutil.copy(db, alone / db.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, str(alone))  # type: ignore[no-untyped-call]
        counts[db.stem] = registry.get_sample_value("trident_requests_total", OK) or 0.0
    return counts


def scraped_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "trident_requests_total" and s.labels == OK
    )


def test_counts_add_up_across_two_workers(two_workers: tuple[str, Path, str], tmp_path: Path) -> None:
    url, metrics_dir, key = two_workers
    with ThreadPoolExecutor(8) as pool:
        for _ in range(25):  # until both workers have served some
            assert set(pool.map(lambda _: _predict(url, key), range(8))) == {200}
            workers = per_worker(metrics_dir, tmp_path)
            if sum(1 for n in workers.values() if n > 0) >= 2:
                break
    served = [n for n in workers.values() if n > 0]
    assert len(served) == 2, f"one worker served everything: {workers}"
    settled = time.monotonic() + 5  # a worker counts a request as it finishes, after its answer went out
    while True:
        total = sum(per_worker(metrics_dir, tmp_path).values())
        scraped = {scraped_total(url) for _ in range(10)}
        if scraped == {total} or time.monotonic() > settled:
            break
        time.sleep(0.2)
    assert scraped == {total}  # the same answer from either worker, the sum of both workers' files
    assert re.search(r"trident_requests_in_flight 0\.0", httpx.get(f"{url}/metrics").text)
