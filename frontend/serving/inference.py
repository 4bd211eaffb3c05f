"""Steps shared by the image and video routes: CPU work on the bounded pool, one Triton call, and
one image's result rendered."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
import numpy as np
import orjson
from numpy.typing import NDArray

from core.modelspec import CANDIDATES_OUTPUT, CONF_INPUT, U8_INPUT
from frontend.serving.catalog import ServedModel
from pipeline.contract import PredictOptions
from pipeline.decode import Decoder
from pipeline.formats import Call, Format
from pipeline.prepare import Prepared
from pipeline.render_maps import map_objects
from pipeline.result import Result
from pipeline.tracking import VideoTracking

if TYPE_CHECKING:
    from frontend.serving.engine import Engine
    from frontend.serving.triton import Triton

T = TypeVar("T")
Track = Callable[[Result], Result]  # a frame's result through its tracker


@dataclass(frozen=True)
class ModelCall:
    """One predict call through a served model, image or video: what every step needs besides
    the pixels."""

    engine: Engine
    served: ServedModel
    decode: Decoder
    options: PredictOptions
    contract: Format
    call: Call
    tracking: VideoTracking | None = None  # with `track`: the video's or the session's tracker


_thread = threading.local()


def _yielding_to_the_loop(nice: int, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a worker thread that first lowers its own priority by `nice`, once.

    On saturated cores Linux shares a core fairly among runnable threads, so the event loop
    got about a fifth of one against four busy CPU threads: connections waited to be accepted,
    refusals at capacity and `/livez` to be answered (`scripts/overload.py`: its runnable-but-
    waiting share fell from about 50 % to 20 % at nice 10, benchmarks/README.md "Overload").
    The loop's own work is small, so the CPU work loses little. Worker threads are reused by
    anyio for other blocking calls (the key store's reads), which then also yield to the loop."""
    if nice and not getattr(_thread, "lowered", False):
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):  # a sandbox may refuse; the work runs all the same
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        _thread.lowered = True
    return fn(*args)


async def run_cpu(engine: Engine, fn: Callable[..., T], *args: Any) -> T:
    """CPU-bound work off the event loop, on a bounded pool of threads that yield to the loop."""
    return await anyio.to_thread.run_sync(
        _yielding_to_the_loop, engine.cpu_nice, fn, *args, limiter=engine.cpu_limiter
    )


def triton_request(
    served: ServedModel, tensor: NDArray[Any], conf: float
) -> tuple[dict[str, NDArray[Any]], list[str]]:
    """The inputs and requested outputs of one Triton call on `tensor` (a batch), built once for
    every caller (predicts and the deployments' probe). With `candidates` the model also takes
    `conf` and is asked for the candidate anchors instead of its full head (`output0`)."""
    inputs: dict[str, NDArray[Any]] = {U8_INPUT if served.u8_input else served.input_name: tensor}
    if not served.candidates:
        return inputs, list(served.output_names)
    inputs[CONF_INPUT] = np.full((tensor.shape[0], 1), conf, dtype=np.float32)
    return inputs, [CANDIDATES_OUTPUT if name == "output0" else name for name in served.output_names]


def blank_tensor(served: ServedModel) -> NDArray[Any]:
    """One black image in the layout and type the model takes (NHWC bytes or NCHW floats)."""
    h, w = served.spec.imgsz
    if served.u8_input:
        return np.zeros((1, h, w, 3), np.uint8)
    return np.zeros((1, 3, h, w), np.float16 if served.spec.input_dtype == "FP16" else np.float32)


async def infer(
    triton: Triton, served: ServedModel, tensor: NDArray[Any], conf: float, timeout_s: float | None = None
) -> dict[str, NDArray[Any]]:
    """Triton's outputs by name for `tensor`; with `candidates`, `output0` holds only the anchors
    that can pass `conf` in some image of the batch (what `raw_candidates` then keeps from it is
    exactly what it keeps from the full head)."""
    inputs, wanted = triton_request(served, tensor, conf)
    outputs = await triton.infer(served.triton_name, inputs, wanted, timeout_s)
    if served.candidates:
        outputs["output0"] = outputs.pop(CANDIDATES_OUTPUT)
    return outputs


async def run_model(
    engine: Engine,
    served: ServedModel,
    prep: Prepared,
    options: PredictOptions,
    timeout_s: float | None = None,
) -> dict[str, NDArray[Any]]:
    """Triton's outputs by name for `prep.tensor` (a batch of one image or of video frames), within
    Triton's deadline or `timeout_s`."""
    return await infer(engine.triton, served, prep.tensor, options.conf, timeout_s)


def decode_and_render(
    decode: Decoder,
    outputs: dict[str, NDArray[Any]],
    served: ServedModel,
    options: PredictOptions,
    prep: Prepared,
    contract: Format,
    track: Track | None = None,
) -> tuple[Result, orjson.Fragment, dict[str, object]]:
    """The result (through `track` when given), its predictions and its map (semantic, depth: a
    PNG) already serialised, off the event loop (often the largest part of the body)."""
    result = decode(outputs, served.spec, options, prep)
    if track is not None:
        result = track(result)
    return result, *render(result, options, contract)


def render(
    result: Result, options: PredictOptions, contract: Format
) -> tuple[orjson.Fragment, dict[str, object]]:
    """A result's predictions and its map, serialised."""
    rows = contract.rows(result, options)
    maps: dict[str, object] = {
        key: orjson.Fragment(orjson.dumps(value)) for key, value in map_objects(result, options.bits).items()
    }
    return orjson.Fragment(orjson.dumps(rows)), maps
