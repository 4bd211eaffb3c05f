"""The service under change: new models appear without restarts, Triton can die and come back,
and the serving process never carries torch."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers.stack import Stack, own_triton

pytestmark = pytest.mark.integration


def test_a_model_exported_while_serving_is_callable_within_10_s(
    stack: Stack, yolo11n_pt: Path, bus: Path
) -> None:
    stack.export(yolo11n_pt, "test/hot/second")  # returns once the folder is published
    assert stack.wait_model("test/hot/second", timeout_s=10) < 10
    r = stack.predict("test/hot/second", bus, conf=0.5)
    assert r.status_code == 200 and r.json()["predictions"]


def test_a_new_version_is_served_without_restart(
    stack: Stack, yolo11n_pt: Path, yolo26n_pt: Path, bus: Path
) -> None:
    """Re-exporting under the same slug swaps the weights in place (here: 11n, then 26n)."""
    slug = "test/hot/swap"
    stack.export(yolo11n_pt, slug)
    stack.wait_model(slug, timeout_s=10)
    first = stack.predict(slug, bus, conf=0.3).json()["predictions"]
    assert first == stack.predict("test/coco/yolo11n", bus, conf=0.3).json()["predictions"]

    assert stack.export(yolo26n_pt, slug).version == 2
    expected = stack.predict("test/coco/yolo26n", bus, conf=0.3).json()["predictions"]
    assert expected != first  # otherwise the swap could not be told from no swap
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = stack.predict(slug, bus, conf=0.3)
        assert r.status_code in (200, 503), r.text  # never a wrong answer, at most a brief reload
        if r.status_code == 200:
            answer = r.json()["predictions"]
            assert answer in (first, expected), "an answer from neither version 1 nor version 2"
            if answer == expected:
                break
        time.sleep(0.2)
    else:
        raise AssertionError("version 2 was not served within 10 s")


def serving_pids(stack: Stack) -> list[int]:
    assert stack.frontend is not None
    pids = [stack.frontend.pid]
    children = Path(f"/proc/{stack.frontend.pid}/task/{stack.frontend.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    return pids


def test_the_serving_process_never_loads_torch_or_ultralytics(stack: Stack, bus: Path) -> None:
    assert stack.predict("test/coco/yolo11n", bus).status_code == 200  # after real work
    for pid in serving_pids(stack):
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libtorch" not in maps and "/torch/" not in maps, f"torch is mapped into the frontend ({pid})"
        assert "/ultralytics/" not in maps


def test_triton_down_gives_503_fast_and_recovers_without_restart(
    stack: Stack, bus: Path, tmp_path: Path
) -> None:
    slug = "test/coco/yolo11n"
    with own_triton(stack, tmp_path, slug) as small:  # killing the session's would reload every model
        small.start_triton()
        small.start_frontend(tmp_path / "frontend.log")
        small.wait_model(slug)
        assert small.predict(slug, bus).status_code == 200
        small.kill_triton()
        try:
            for _ in range(3):
                start = time.monotonic()
                r = small.predict(slug, bus)
                elapsed = time.monotonic() - start
                assert r.status_code == 503, r.text
                assert elapsed < 1.0, f"503 took {elapsed:.2f} s"
                assert r.headers["Retry-After"].isdigit()
                assert r.json()["error"]["message"] == "Service unavailable"
            ready = small.predict("test/coco/no-such-model", bus)
            assert ready.status_code == 503, ready.text  # "missing" looks like "down" while Triton is away
        finally:
            small.start_triton()
        assert small.wait_model(slug, timeout_s=30) < 30
        assert small.predict(slug, bus).status_code == 200
