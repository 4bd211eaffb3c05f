"""Shared memory for the input tensor with the real local Triton (`TRIDENT_TRITON_SHARED_MEMORY`).

The stack's frontend runs with the default, `auto`: Triton is on 127.0.0.1, so the letterboxed
image reaches it through a region in /dev/shm. It must answer exactly what plain gRPC answers,
never lose a request to shared memory, and leave nothing behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from tests.helpers.aio import run
from tests.helpers.stack import Stack, free_port
from trident import runtime

pytestmark = pytest.mark.integration
SLUG = "test/coco/yolo11n"
SHM = Path("/dev/shm")


def predictions(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    return body["predictions"], body["image"]


def predict(base: str, key: str, image: Path) -> httpx.Response:
    with image.open("rb") as f:
        return httpx.post(
            f"{base}/api/models/{SLUG}/predict",
            headers={"Authorization": f"Bearer {key}"},
            files={"file": (image.name, f)},
            timeout=60,
        )


def transports(base: str) -> dict[str, float]:
    """The frontend's `trident_triton_inputs_total` by transport."""
    counts = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("trident_triton_inputs_total{"):
            counts[line.split('transport="')[1].split('"')[0]] = float(line.split()[-1])
    return counts


def triton_regions(stack: Stack) -> dict[str, dict[str, Any]]:
    """Triton's system shared-memory status: region name -> {key, offset, byte_size}."""
    reply = httpx.get(f"{stack.settings.triton_http_url}/v2/systemsharedmemory/status", timeout=5)
    reply.raise_for_status()
    return {r["name"]: r for r in reply.json()}


def segments(pid: int) -> set[str]:
    """This frontend process's segments in /dev/shm."""
    return {p.name for p in SHM.glob(f"trident-{pid}-*")}


@pytest.fixture
def grpc_only(stack: Stack, tmp_path: Path) -> Iterator[str]:
    process, base = stack.spawn_frontend(tmp_path / "off.log", TRIDENT_TRITON_SHARED_MEMORY="off")
    yield base
    runtime.stop(process)


def test_predictions_through_shared_memory_are_identical_to_grpc(
    stack: Stack, grpc_only: str, bus: Path, zidane: Path
) -> None:
    before = transports(stack.base_url)
    for image in (bus, zidane):
        for conf in (0.25, 0.05):
            shm = predictions(stack.predict(SLUG, image, conf=conf))
            plain = httpx.post(
                f"{grpc_only}/api/models/{SLUG}/predict",
                headers={"Authorization": f"Bearer {stack.api_key}"},
                files={"file": (image.name, image.read_bytes())},
                data={"conf": str(conf)},
                timeout=60,
            )
            assert shm == predictions(plain)
            assert len(shm[0]) > 0
    after = transports(stack.base_url)
    assert after["shm"] - before["shm"] == 4 and after["grpc"] == before["grpc"]
    assert transports(grpc_only)["shm"] == 0


def test_triton_lists_the_registered_regions_and_they_are_ours(stack: Stack, bus: Path) -> None:
    assert stack.frontend is not None
    predictions(stack.predict(SLUG, bus))
    ours = {n: r for n, r in triton_regions(stack).items() if n.startswith(f"trident-{stack.frontend.pid}-")}
    assert ours, triton_regions(stack)
    for name, region in ours.items():
        assert region["key"] == f"/{name}" and int(region["offset"]) == 0
        assert (SHM / name).stat().st_size >= int(region["byte_size"]) >= 640 * 480 * 3
    assert set(ours) <= segments(stack.frontend.pid)


def test_regions_triton_forgot_cost_no_request_and_are_registered_again(stack: Stack, bus: Path) -> None:
    """What a Triton restart does to registrations, without the restart."""
    expected = predictions(stack.predict(SLUG, bus))
    httpx.post(f"{stack.settings.triton_http_url}/v2/systemsharedmemory/unregister", timeout=5)
    assert triton_regions(stack) == {}
    before = transports(stack.base_url)
    assert predictions(stack.predict(SLUG, bus)) == expected  # refused by Triton, sent again over gRPC
    for _ in range(2):
        assert predictions(stack.predict(SLUG, bus)) == expected  # registered again: shared memory
    after = transports(stack.base_url)
    assert after["grpc"] - before["grpc"] == 1 and after["shm"] - before["shm"] == 2
    assert triton_regions(stack)


def test_no_segment_is_left_after_the_frontend_stops(stack: Stack, tmp_path: Path, bus: Path) -> None:
    process, base = stack.spawn_frontend(tmp_path / "frontend.log")
    for _ in range(2):
        predictions(predict(base, stack.api_key, bus))
    mine = segments(process.pid)
    assert mine and mine <= set(triton_regions(stack))
    assert runtime.stop(process) in (0, -15)  # uvicorn re-raises SIGTERM after its shutdown
    assert segments(process.pid) == set()
    assert not mine & set(triton_regions(stack))  # unregistered, not only unlinked


def test_a_killed_frontend_leaves_no_segment_either(stack: Stack, tmp_path: Path, bus: Path) -> None:
    """SIGKILL skips the shutdown; Python's resource tracker, a process of its own, unlinks the
    segments when the frontend dies (Triton keeps the stale registrations until it restarts)."""
    process, base = stack.spawn_frontend(tmp_path / "frontend.log")
    predictions(predict(base, stack.api_key, bus))
    assert segments(process.pid)
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while segments(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert segments(process.pid) == set()


def test_a_refused_registration_falls_back_to_grpc_with_the_same_answer(
    stack: Stack, bus: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """In process, the real Triton refusing to register (as `register_system_shared_memory` does
    when it cannot open the key): every call still answers, over gRPC, with one warning."""
    from tritonclient.utils import InferenceServerException

    from core.modelspec import U8_INPUT, ModelSpec
    from frontend.serving.triton import Triton
    from pipeline.prepare import prepare

    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise InferenceServerException("Unable to open shared memory region", "StatusCode.INTERNAL")

    async def scenario() -> list[dict[str, Any]]:
        answers = []
        for refused in (False, True):
            triton = Triton(stack.settings.triton_grpc_url, 30.0, shared_memory="auto")
            if refused:
                monkeypatch.setattr(triton._client, "register_system_shared_memory", refuse)
            config = await triton.model_config(stack.exported[SLUG].triton_name)
            spec = ModelSpec.from_json(config["parameters"]["trident"]["string_value"])
            tensor = prepare(cv2.imread(str(bus)), spec, 640, u8=True).tensor
            outputs = [await triton.infer(config["name"], {U8_INPUT: tensor}, ["output0"]) for _ in range(3)]
            assert triton.regions is not None and triton.regions.enabled is not refused
            answers.append(outputs[-1])
            await triton.close()
        return answers

    with caplog.at_level("WARNING", "trident.frontend"):
        shm, grpc = run(scenario())
    np.testing.assert_array_equal(shm["output0"], grpc["output0"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "shared memory with Triton is off from now on" in warnings[0]
    assert "Unable to open shared memory region" in warnings[0]


def _isolated_shm_prefix() -> list[str] | None:
    """`unshare` arguments that give a process its own empty /dev/shm, or None where not allowed."""
    if shutil.which("unshare") is None:
        return None
    for flags in (["-m"], ["-rm"]):
        probe = ["unshare", *flags, "sh", "-c", "mount -t tmpfs tmpfs /dev/shm"]
        if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            return ["unshare", *flags, "sh", "-c", 'mount -t tmpfs tmpfs /dev/shm && exec "$@"', "sh"]
    return None


@pytest.fixture
def triton_elsewhere(stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    """A second Triton on the same models that cannot see this host's /dev/shm, as one in another
    container would be (its own mount namespace with an empty tmpfs there)."""
    prefix = _isolated_shm_prefix()
    if prefix is None:
        pytest.skip("cannot give a process its own /dev/shm here (unshare not permitted)")
    settings = replace_ports(stack)
    root = runtime.ensure_runtime(settings.runtime_dir, quiet=True)
    command = [*prefix, *runtime.server_command(settings, root, stack.repository)]
    log = tmp_path / "triton-elsewhere.log"
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        runtime.wait_ready(settings, process)
        yield Stack(settings, stack.repository, log, stack.exports, triton=process, api_key=stack.api_key)
    finally:
        runtime.stop(process)


def replace_ports(stack: Stack) -> Any:
    return stack.settings.model_copy(
        update={
            "triton_grpc_port": free_port(),
            "triton_http_port": free_port(),
            "triton_metrics_port": free_port(),
        }
    )


def test_a_triton_that_cannot_see_the_region_gets_every_request_over_grpc(
    stack: Stack, triton_elsewhere: Stack, tmp_path: Path, bus: Path, zidane: Path
) -> None:
    log = tmp_path / "frontend.log"
    process, base = stack.spawn_frontend(
        log,
        TRIDENT_TRITON_GRPC_PORT=str(triton_elsewhere.settings.triton_grpc_port),
        TRIDENT_TRITON_HTTP_PORT=str(triton_elsewhere.settings.triton_http_port),
    )
    try:
        answers = []
        for image in (bus, zidane, bus):
            for _ in range(60):  # the second Triton may still be loading the model
                response = predict(base, stack.api_key, image)
                if response.status_code not in (404, 503):
                    break
                time.sleep(0.5)
            answers.append(predictions(response))
        assert answers[0] == answers[2] == predictions(stack.predict(SLUG, bus))
        assert answers[1] == predictions(stack.predict(SLUG, zidane))
        assert transports(base)["shm"] == 0 and transports(base)["grpc"] >= 3
        assert segments(process.pid) == set()  # the refused region was unlinked at once
        assert triton_regions(triton_elsewhere) == {}
    finally:
        runtime.stop(process)
    text = log.read_text()
    assert text.count("shared memory with Triton is off from now on") == 1, text[-3000:]
    assert segments(process.pid) == set()
