"""The only module that talks to Triton: async gRPC, deadlines, and error mapping.

The channel reconnects within a second after Triton comes back (gRPC's default backoff grows to
two minutes, which would keep answering 503 long after Triton is up again).

With `shared_memory` (Triton on this host), large inputs travel through system shared memory
regions registered once (`frontend.serving.shm`); the outputs still come back over gRPC. A request whose
shared-memory call fails because of the shared memory (a region Triton forgot or cannot read) is
sent again over gRPC, so it is never lost to shared memory; any other error is the request's own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
from typing import Any, Literal

import numpy as np
import tritonclient.grpc.aio as grpcclient
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from frontend.errors import InferenceTimeout, ServiceUnavailable, ServingError
from frontend.metrics import record_input_transport, record_triton_error
from frontend.serving.shm import Region, RegionPool, Transient, aligned

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
LOAD_TIMEOUT_S = 300.0  # a load runs the model's initialisation and its warm-up
SHM_MIN_INPUT_BYTES = 64 * 1024  # smaller inputs (the conf threshold) stay in the gRPC message
SharedMemoryMode = Literal["auto", "off"]
log = logging.getLogger("trident.frontend")


def is_loopback(url: str) -> bool:
    """Whether `host:port` names this host (127.0.0.0/8, ::1 or `[::1]`, localhost)."""
    host = url.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unreachable(status: str) -> bool:
    return any(s in status for s in ("UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED"))


def _shared_memory_failure(exc: InferenceServerException) -> bool:
    """Triton could not read a region (it forgot or cannot see it); not a deadline, not the model's
    own error, which plain gRPC would meet too."""
    return not _unreachable(exc.status() or "") and "shared memory" in (exc.message() or "").lower()


def map_error(exc: InferenceServerException, model: str = "") -> ServingError:
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
    def __init__(
        self, url: str, timeout_s: float, shared_memory: SharedMemoryMode = "off", max_regions: int = 8
    ) -> None:
        self._client = grpcclient.InferenceServerClient(url, channel_args=_CHANNEL_ARGS)
        self._timeout_s = timeout_s
        self.regions: RegionPool | None = None
        if shared_memory == "auto" and is_loopback(url):
            self.regions = RegionPool(self._register, self._unregister, max_regions)

    async def close(self) -> None:
        if self.regions is not None:
            await self.regions.close()
        await self._client.close()

    async def _register(self, region: Region) -> None:
        """Register `region`, replacing any registration of its name (one cut short by a cancelled
        request, or of its size before it grew)."""
        with contextlib.suppress(InferenceServerException):
            await self._client.unregister_system_shared_memory(region.name, client_timeout=CONTROL_TIMEOUT_S)
        try:
            await self._client.register_system_shared_memory(
                region.name, region.key, region.byte_size, client_timeout=CONTROL_TIMEOUT_S
            )
        except InferenceServerException as exc:
            if _unreachable(exc.status() or ""):
                raise Transient(exc.message()) from None
            raise

    async def _unregister(self, region: Region) -> None:
        try:
            await self._client.unregister_system_shared_memory(region.name, client_timeout=CONTROL_TIMEOUT_S)
        except InferenceServerException as exc:
            raise Transient(exc.message()) from None

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
            raise map_error(exc) from None
        return {m["name"]: m.get("version", "") for m in index.get("models", []) if m.get("state") == "READY"}

    async def repository_index(self) -> list[dict[str, str]]:
        """Every model folder Triton sees, one entry per version it knows (name, version, state,
        reason); a folder never loaded has only its name."""
        try:
            index = await self._client.get_model_repository_index(
                as_json=True, client_timeout=CONTROL_TIMEOUT_S
            )
        except InferenceServerException as exc:
            raise map_error(exc) from None
        return list(index.get("models", []))

    async def load(self, name: str) -> None:
        """Load `name` (Triton's repository API); a no-op when it is loaded and unchanged on disk,
        a reload when a new version appeared. Raises `ServingError` with Triton's reason."""
        try:
            await self._client.load_model(name, client_timeout=LOAD_TIMEOUT_S)
        except InferenceServerException as exc:
            if _unreachable(exc.status() or ""):
                raise ServiceUnavailable("the inference server is unreachable") from None
            raise ServingError(exc.message() or "the model failed to load") from None

    async def unload(self, name: str) -> None:
        """Unload `name`; Triton lets the inferences already running on it finish first."""
        try:
            await self._client.unload_model(name, client_timeout=CONTROL_TIMEOUT_S * 10)
        except InferenceServerException as exc:
            raise map_error(exc, name) from None

    async def model_config(self, name: str) -> dict[str, Any]:
        try:
            reply = await self._client.get_model_config(name, as_json=True, client_timeout=CONTROL_TIMEOUT_S)
        except InferenceServerException as exc:
            raise map_error(exc, name) from None
        config: dict[str, Any] = reply["config"]
        return config

    async def infer(
        self, name: str, inputs: dict[str, NDArray[Any]], outputs: list[str], timeout_s: float | None = None
    ) -> dict[str, NDArray[Any]]:
        """One inference with the configured deadline (or `timeout_s`: a video's batch waits in
        Triton's queue behind the batch before it, by design, so it runs on the video's own
        deadline); the call is cancelled when it passes."""
        start = time.monotonic()
        deadline_s = self._timeout_s if timeout_s is None else timeout_s
        pool = self.regions
        large = [k for k, a in inputs.items() if a.nbytes >= SHM_MIN_INPUT_BYTES]
        region = None
        if pool is not None and large:
            region = await pool.acquire(sum(aligned(inputs[k].nbytes) for k in large))
        if pool is None or region is None:
            record_input_transport("grpc")
            return await self._infer(name, inputs, outputs, deadline_s)
        try:
            offsets = dict(zip(large, region.write([inputs[k] for k in large]), strict=True))
            result = await self._infer(name, inputs, outputs, deadline_s, region, offsets)
        except InferenceServerException as exc:  # only a shared-memory failure gets here (`_infer`)
            reason = exc.message() or type(exc).__name__
            pool.forget_registrations()  # e.g. Triton restarted: register again next time
        except ServingError:
            raise
        except Exception as exc:  # the region itself (SharedMemoryException); gRPC still works
            reason = repr(exc)
        else:
            record_input_transport("shm")
            return result
        finally:
            pool.release(region)
        log.info("shared-memory inference failed (%s); sent again over gRPC", reason)
        record_input_transport("grpc")
        left = max(deadline_s - (time.monotonic() - start), CONTROL_TIMEOUT_S)
        return await self._infer(name, inputs, outputs, left)

    async def _infer(
        self,
        name: str,
        inputs: dict[str, NDArray[Any]],
        outputs: list[str],
        timeout_s: float,
        region: Region | None = None,
        offsets: dict[str, int] | None = None,
    ) -> dict[str, NDArray[Any]]:
        """The call itself; with `region`, the inputs named in `offsets` are already in it.

        Errors are mapped, except a failure of the shared memory itself, which `infer` handles."""
        request = []
        for input_name, array in inputs.items():
            tensor = grpcclient.InferInput(input_name, list(array.shape), np_to_triton_dtype(array.dtype))
            if region is not None and offsets is not None and input_name in offsets:
                tensor.set_shared_memory(region.name, array.nbytes, offsets[input_name])
            else:
                tensor.set_data_from_numpy(array)
            request.append(tensor)
        wanted = [grpcclient.InferRequestedOutput(o) for o in outputs]
        try:
            result = await self._client.infer(name, request, outputs=wanted, client_timeout=timeout_s)
        except InferenceServerException as exc:
            if region is not None and _shared_memory_failure(exc):
                raise  # `infer` sends it again over gRPC
            record_triton_error(exc.status())
            raise map_error(exc, name) from None
        arrays: dict[str, NDArray[Any]] = {}
        for output in outputs:
            array = result.as_numpy(output)
            if array is None:
                raise ServingError(f"the model returned no {output!r} tensor")
            arrays[output] = np.asarray(array)
        return arrays
