"""Load shedding on the real stack: with `TRIDENT_MAX_IN_FLIGHT` inferences held, the next predict
is refused at once (503, `Retry-After`) instead of queueing, and the held ones still succeed.

The inferences are held by their `source` URL: the fetch happens inside the in-flight slot, and
the local image server (`tests/helpers/image_server.py`) answers only when the test lets it, so
"the slots are full" is known, not guessed from timings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers.image_server import ImageServer, serving
from tests.helpers.stack import Stack, assert_error
from trident import runtime

pytestmark = pytest.mark.integration
SLUG = "test/coco/yolo11n"
LIMIT = 3
TINY = Path(__file__).parents[1] / "fixtures" / "tiny.png"


@pytest.fixture
def gate(bus: Path) -> Iterator[ImageServer]:
    """Each GET waits for `release`; `requests` counts the GETs that arrived."""
    with serving(bus.read_bytes(), gated=True) as server:
        yield server


def test_past_max_in_flight_a_predict_is_a_fast_503_and_the_held_ones_succeed(
    stack: Stack, gate: ImageServer, tmp_path: Path
) -> None:
    process, base = stack.spawn_frontend(
        tmp_path / "shedding.log", TRIDENT_MAX_IN_FLIGHT=str(LIMIT), TRIDENT_SOURCE_ALLOW_PRIVATE="1"
    )
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    url = f"{base}/api/models/{SLUG}/predict"

    def held() -> httpx.Response:
        return httpx.post(url, headers=headers, files={"source": (None, gate.url)}, timeout=60)

    try:
        with ThreadPoolExecutor(LIMIT) as pool, httpx.Client(headers=headers, timeout=60) as client:
            warm = client.post(url, files={"file": TINY.read_bytes()})  # also warms the connection
            assert warm.status_code == 200
            futures = [pool.submit(held) for _ in range(LIMIT)]
            deadline = time.monotonic() + 20
            while gate.requests < LIMIT:  # every held request is inside its slot, fetching its source
                assert time.monotonic() < deadline, f"{gate.requests} of {LIMIT} fetches arrived"
                time.sleep(0.01)
            elapsed = []
            for _ in range(3):
                start = time.monotonic()
                refused = client.post(url, files={"file": TINY.read_bytes()})
                elapsed.append(time.monotonic() - start)
                assert_error(refused, 503, "Service unavailable", "at capacity")
                assert refused.headers["Retry-After"].isdigit()
                assert "X-RateLimit-Remaining" not in refused.headers  # refused before the quota
                assert refused.headers["Server-Timing"].startswith("total;dur=")
            gate.release.set()
            answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * LIMIT, [a.text for a in answers]
        assert all(a.json()["predictions"] for a in answers)
        assert gate.requests == LIMIT  # refused requests never reached inference
        after = httpx.post(url, headers=headers, files={"file": TINY.read_bytes()}, timeout=60)
        spent = int(warm.headers["X-RateLimit-Remaining"]) - int(after.headers["X-RateLimit-Remaining"])
        assert spent <= LIMIT + 1, (
            f"{spent} requests spent: the refused ones too"
        )  # (less if a window rolled)
        print(f"503 round trips: {', '.join(f'{1000 * t:.1f} ms' for t in elapsed)}")
        assert max(elapsed) < 0.05, f"503 took {1000 * max(elapsed):.1f} ms"
    finally:
        runtime.stop(process)
