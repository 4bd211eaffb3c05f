"""The only module that talks to Triton: async gRPC, deadlines, and error mapping.

The channel reconnects within a second after Triton comes back (gRPC's default backoff grows to
two minutes, which would keep answering 503 long after Triton is up again).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from frontend.errors import InferenceTimeout, ServiceUnavailable, ServingError
from frontend.metrics import record_triton_error

_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 2_000),
]
CONTROL_TIMEOUT_S = 1.0  # health, index and config calls


def _map_error(exc: InferenceServerException, model: str = "") -> ServingError:
    status = exc.status() or ""
    if "DEADLINE_EXCEEDED" in status:
        return InferenceTimeout(
            f"inference did not finish within the deadline{f' ({model})' if model else ''}"
        )
    if "UNAVAILABLE" in status or "CANCELLED" in status:
        return ServiceUnavailable("the inference server is unreachable")
    if "NOT_FOUND" in status or "not found" in (exc.message() or "") or "not ready" in (exc.message() or ""):
        return ServiceUnavailable(f"model {model} is not loaded right now")
    return ServingError("the inference server failed to run the model")


class Triton:
    def __init__(self, url: str, timeout_s: float) -> None:
        self._client = grpcclient.InferenceServerClient(url, channel_args=_CHANNEL_ARGS)
        self._timeout_s = timeout_s

    async def close(self) -> None:
        await self._client.close()

    async def is_ready(self) -> bool:
        try:
            return bool(await self._client.is_server_ready(client_timeout=CONTROL_TIMEOUT_S))
        except InferenceServerException:
            return False

    async def ready_models(self) -> dict[str, str]:
        """Name -> version of every model Triton reports READY."""
        try:
            index = await self._client.get_model_repository_index(
                as_json=True, client_timeout=CONTROL_TIMEOUT_S
            )
        except InferenceServerException as exc:
            raise _map_error(exc) from None
        return {m["name"]: m.get("version", "") for m in index.get("models", []) if m.get("state") == "READY"}

    async def model_config(self, name: str) -> dict[str, Any]:
        try:
            reply = await self._client.get_model_config(name, as_json=True, client_timeout=CONTROL_TIMEOUT_S)
        except InferenceServerException as exc:
            raise _map_error(exc, name) from None
        config: dict[str, Any] = reply["config"]
        return config

    async def infer(
        self, name: str, inputs: dict[str, NDArray[Any]], outputs: list[str]
    ) -> dict[str, NDArray[Any]]:
        """One inference with the configured deadline; the call is cancelled when it passes."""
        request = []
        for input_name, array in inputs.items():
            tensor = grpcclient.InferInput(input_name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        wanted = [grpcclient.InferRequestedOutput(o) for o in outputs]
        try:
            result = await self._client.infer(name, request, outputs=wanted, client_timeout=self._timeout_s)
        except InferenceServerException as exc:
            record_triton_error(exc.status())
            raise _map_error(exc, name) from None
        arrays: dict[str, NDArray[Any]] = {}
        for output in outputs:
            array = result.as_numpy(output)
            if array is None:
                raise ServingError(f"the model returned no {output!r} tensor")
            arrays[output] = np.asarray(array)
        return arrays
