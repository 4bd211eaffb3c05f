"""Faults a service meets in production: a Triton deadline, and a shutdown with requests in flight
(reliability Part C, cases 21 and 24)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import pytest

from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration
SLUG = "test/coco/yolo11n"


@pytest.fixture
def impatient(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """A frontend whose inference deadline (10 ms) is shorter than any CPU inference."""
    process, base = stack.spawn_frontend(tmp_path / "impatient.log", TRIDENT_TRITON_TIMEOUT_S="0.01")
    yield base
    process.terminate()
    process.wait(30)


def predict(base: str, key: str, image: Path) -> httpx.Response:
    return httpx.post(
        f"{base}/api/models/{SLUG}/predict",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": image.read_bytes()},
        timeout=60,
    )


def test_a_triton_deadline_is_a_fast_504_and_the_worker_stays_responsive(
    impatient: str, stack: Stack, bus: Path
) -> None:
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(predict, impatient, stack.api_key, bus)
        start = time.monotonic()
        live = httpx.get(f"{impatient}/livez")
        assert live.status_code == 200 and time.monotonic() - start < 0.5
        response = slow.result()
    assert response.status_code == 504
    assert response.json()["error"]["message"] == "Inference timeout"
    assert response.elapsed.total_seconds() < 2.0
    # the service is still whole: the normal stack answers, and so does this frontend's health
    assert stack.predict(SLUG, bus).status_code == 200
    assert httpx.get(f"{impatient}/readyz").status_code == 200


def in_flight(base: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("trident_requests_in_flight "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture
def big_bus(bus: Path, tmp_path: Path) -> Path:
    """bus.jpg at 17 MP (3 MB): a decode takes long enough that 20 of them queue up."""
    image = cv2.imread(str(bus))
    path = tmp_path / "big_bus.jpg"
    cv2.imwrite(str(path), cv2.resize(image, None, fx=4.5, fy=4.5, interpolation=cv2.INTER_LINEAR))
    return path


def test_sigterm_lets_in_flight_requests_finish(stack: Stack, big_bus: Path, tmp_path: Path) -> None:
    # one CPU thread and big images: the 20 requests queue inside the app for seconds, so all of them
    # are in flight at once even on a loaded machine
    process, base = stack.spawn_frontend(tmp_path / "shutdown.log", TRIDENT_CPU_THREADS="1")
    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(predict, base, stack.api_key, big_bus) for _ in range(20)]
        deadline = time.monotonic() + 20
        while in_flight(base) < 20:  # all 20 are being served (connections not yet accepted would be refused)
            assert time.monotonic() < deadline, f"only {in_flight(base)} requests got in"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        statuses = [f.result().status_code for f in futures]
    assert statuses == [200] * 20
    assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/livez", timeout=2)  # and then it is gone
