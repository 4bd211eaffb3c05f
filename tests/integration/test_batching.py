"""Triton's dynamic batcher as exported: no wait for a lone request, real batches under load.

A queue delay makes every request wait in case another comes (2 ms on each request here, for
nothing, when they come one at a time); without one, requests that arrive while the model runs
are still batched together, because they queue until the instance is free. Read from Triton's
own statistics for the stack's yolo11n.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration
SLUG = "test/coco/yolo11n"


def model_stats(stack: Stack) -> dict[str, Any]:
    name = stack.exported[SLUG].triton_name
    url = f"http://127.0.0.1:{stack.settings.triton_http_port}/v2/models/{name}/stats"
    stats: dict[str, Any] = httpx.get(url, timeout=10).json()["model_stats"][0]
    return stats


def test_a_lone_request_does_not_wait_for_a_batch(stack: Stack, bus: Path) -> None:
    waits_ms = []
    for _ in range(7):
        before = model_stats(stack)["inference_stats"]["queue"]
        assert stack.predict(SLUG, bus).status_code == 200
        after = model_stats(stack)["inference_stats"]["queue"]
        settled = time.monotonic() + 5  # Triton's statistics can lag its answer on a busy machine
        while after["count"] == before["count"] and time.monotonic() < settled:
            time.sleep(0.05)
            after = model_stats(stack)["inference_stats"]["queue"]
        assert after["count"] - before["count"] == 1
        waits_ms.append((int(after["ns"]) - int(before["ns"])) / 1e6)
    assert statistics.median(waits_ms) < 1.0, waits_ms  # a 2 ms queue delay shows as 2.1 ms here


def test_requests_that_arrive_together_run_as_one_batch_with_the_same_answers(
    stack: Stack, bus: Path
) -> None:
    alone = stack.predict(SLUG, bus).json()["predictions"]
    before = model_stats(stack)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: stack.predict(SLUG, bus), range(8)))
    after = model_stats(stack)
    assert [r.status_code for r in responses] == [200] * 8
    assert all(r.json()["predictions"] == alone for r in responses)  # batching changes nothing
    inferences = int(after["inference_count"]) - int(before["inference_count"])
    executions = int(after["execution_count"]) - int(before["execution_count"])
    assert inferences == 8
    assert executions < inferences, (executions, inferences)  # at least one batch of two or more
