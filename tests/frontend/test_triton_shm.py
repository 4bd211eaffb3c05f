"""`Triton.infer` with shared memory: used on loopback only, and a failure never loses a request.

The gRPC client is replaced by a fake server that reads shared-memory inputs the way Triton does
(by the registered key, at the request's offset) and answers with the sum of the input.
"""

from __future__ import annotations

from multiprocessing import shared_memory
from typing import Any

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from frontend.errors import InferenceTimeout, ServingError
from frontend.serving import triton as triton_module
from frontend.serving.triton import Triton, is_loopback
from tests.helpers.aio import run

IMAGE = np.random.default_rng(0).integers(0, 256, (1, 480, 640, 3), dtype=np.uint8)
EXPECTED = float(IMAGE.sum(dtype=np.int64))


class Result:
    def __init__(self, total: float) -> None:
        self.total = total

    def as_numpy(self, name: str) -> np.ndarray:
        return np.array([[self.total]], dtype=np.float64)


class FakeServer:
    def __init__(self) -> None:
        self.keys: dict[str, str] = {}
        self.calls: list[str] = []  # "shm" or "grpc" per infer call
        self.refuse_registration = False
        self.fail_shm_infer: InferenceServerException | None = None

    async def register_system_shared_memory(self, name: str, key: str, byte_size: int, **_: Any) -> None:
        if self.refuse_registration:
            raise InferenceServerException("Unable to open shared memory region", "StatusCode.INTERNAL")
        self.keys[name] = key

    async def unregister_system_shared_memory(self, name: str = "", **_: Any) -> None:
        self.keys.pop(name, None)

    async def infer(self, model: str, inputs: list[Any], outputs: Any, client_timeout: float) -> Result:
        tensor = inputs[0]._get_tensor()
        if "shared_memory_region" in tensor.parameters:
            self.calls.append("shm")
            if self.fail_shm_infer is not None:
                raise self.fail_shm_infer
            name = tensor.parameters["shared_memory_region"].string_param
            if name not in self.keys:
                raise InferenceServerException(
                    f"Unable to find system shared memory region: '{name}'", "StatusCode.INVALID_ARGUMENT"
                )
            offset = tensor.parameters["shared_memory_offset"].int64_param
            size = tensor.parameters["shared_memory_byte_size"].int64_param
            segment = shared_memory.SharedMemory(self.keys[name])
            total = float(np.frombuffer(segment.buf, np.uint8, size, offset).sum(dtype=np.int64))
            segment.close()
            return Result(total)
        self.calls.append("grpc")
        return Result(float(np.frombuffer(inputs[0]._get_content(), np.uint8).sum(dtype=np.int64)))

    async def close(self) -> None:
        pass


def infer_with(
    server: FakeServer, requests: int = 1, url: str = "127.0.0.1:8001", mode: str = "auto"
) -> list[float]:
    async def scenario() -> list[float]:
        triton = Triton(url, 5.0, shared_memory=mode)  # type: ignore[arg-type]
        await triton._client.close()
        triton._client = server
        totals = []
        for _ in range(requests):
            out = await triton.infer("m", {"images_u8": IMAGE}, ["output0"])
            totals.append(float(out["output0"][0, 0]))
        await triton.close()
        return totals

    return run(scenario())


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("127.0.0.1:8001", True),
        ("127.0.0.2:8001", True),
        ("localhost:8001", True),
        ("[::1]:8001", True),
        ("triton:8001", False),
        ("10.0.0.5:8001", False),
        ("[2001:db8::1]:8001", False),
    ],
)
def test_shared_memory_is_tried_only_when_triton_is_on_loopback(url: str, local: bool) -> None:
    assert is_loopback(url) is local


def test_the_input_goes_through_shared_memory_and_gives_the_same_answer() -> None:
    server = FakeServer()
    assert infer_with(server, requests=3) == [EXPECTED] * 3
    assert server.calls == ["shm"] * 3
    assert server.keys == {}  # unregistered on close


@pytest.mark.parametrize(("url", "mode"), [("127.0.0.1:8001", "off"), ("triton:8001", "auto")])
def test_off_or_a_remote_triton_sends_the_input_in_the_grpc_message(url: str, mode: str) -> None:
    server = FakeServer()
    assert infer_with(server, requests=2, url=url, mode=mode) == [EXPECTED] * 2
    assert server.calls == ["grpc", "grpc"]


def test_a_refused_registration_falls_back_to_grpc_for_good() -> None:
    server = FakeServer()
    server.refuse_registration = True
    assert infer_with(server, requests=3) == [EXPECTED] * 3
    assert server.calls == ["grpc"] * 3


def test_a_failed_shared_memory_call_is_sent_again_over_grpc() -> None:
    server = FakeServer()
    server.fail_shm_infer = InferenceServerException("shared memory went away", "StatusCode.INTERNAL")
    assert infer_with(server, requests=2) == [EXPECTED] * 2
    assert server.calls == ["shm", "grpc", "shm", "grpc"]


def test_the_models_own_error_is_not_sent_twice() -> None:
    server = FakeServer()
    server.fail_shm_infer = InferenceServerException(
        "unexpected shape for input", "StatusCode.INVALID_ARGUMENT"
    )
    with pytest.raises(ServingError):
        infer_with(server)
    assert server.calls == ["shm"]


def test_regions_triton_forgot_are_registered_again_after_one_grpc_request() -> None:
    server = FakeServer()

    async def scenario() -> None:
        triton = Triton("127.0.0.1:8001", 5.0, shared_memory="auto")
        await triton._client.close()
        triton._client = server
        await triton.infer("m", {"images_u8": IMAGE}, ["output0"])
        server.keys.clear()  # Triton restarted
        for _ in range(2):
            out = await triton.infer("m", {"images_u8": IMAGE}, ["output0"])
            assert float(out["output0"][0, 0]) == EXPECTED
        await triton.close()

    run(scenario())
    assert server.calls == ["shm", "shm", "grpc", "shm"]


def test_a_deadline_on_the_shared_memory_path_is_a_504_not_a_retry() -> None:
    server = FakeServer()
    server.fail_shm_infer = InferenceServerException("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED")
    with pytest.raises(InferenceTimeout):
        infer_with(server)
    assert server.calls == ["shm"]


def test_small_inputs_stay_in_the_grpc_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triton_module, "SHM_MIN_INPUT_BYTES", IMAGE.nbytes + 1)
    server = FakeServer()
    assert infer_with(server) == [EXPECTED]
    assert server.calls == ["grpc"]
