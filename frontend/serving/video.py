"""Predict on a video: frames decoded in batches, each batch one Triton call, answered whole or streamed.

The upload stays in its spool (an unnamed temporary file: the kernel frees it when the last
descriptor closes, so no path ever leaks it); OpenCV reads it through `/proc/self/fd`. Batches
are pipelined so that the model never waits for the frontend: one runs in Triton while the next
waits in its queue, and decoding (a worker thread) and postprocessing (the pool) run beside
them, so the event loop only moves bytes. Every frame is one `Result`, rendered
by the image renderers. With `Accept: application/x-ndjson` each processed frame is one JSON line
as soon as its batch is done, then a summary line; a client that goes away stops the work within
one batch. The request has its own deadline (`video_timeout_s`), upload excluded. With `track`,
each frame's `Result` goes through the request's tracker (`pipeline.tracking`) as its batch is
rendered; batches are rendered one after another, so the tracker sees the frames in order.
BoT-SORT's camera motion (optical flow on each frame) is computed as the frames are decoded, in
order too, so it runs beside the model and the rendering rather than in the ordered render step.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncGenerator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson
from numpy.typing import NDArray
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from core.settings import Settings
from frontend.errors import InferenceTimeout, ServiceUnavailable, ServingError
from frontend.metrics import record_tracked, record_video_frames, record_video_request
from frontend.serving.inference import ModelCall, render, run_cpu, run_model
from frontend.serving.video_input import VideoReader
from pipeline.prepare import Prepared, prepare
from pipeline.result import Speed
from pipeline.tracking import Warp

T = TypeVar("T")
NDJSON = "application/x-ndjson"
CLIENT_CLOSED = 499  # nginx's status for a request whose client left; nobody receives it


class ClientGone(Exception):
    """The client disconnected while its whole answer was being computed."""


@dataclass(frozen=True)
class Batch:
    indices: list[int]  # each frame's index in the video (0-based)
    preps: list[Prepared]
    stacked: Prepared  # the frames' model inputs as one tensor
    read_ms: float  # decoding and letterboxing the whole batch
    warps: list[Warp | None]  # with `track`: each frame's camera motion (BoT-SORT's), for its step


def _read_batch(call: ModelCall, reader: VideoReader, size: int) -> Batch | None:
    """The next `size` frames as one model input (a worker thread), or None at the end."""
    start = time.perf_counter()
    frames = reader.read(size)
    if not frames:
        return None
    served, imgsz = call.served, call.options.imgsz
    preps = [prepare(image, served.spec, imgsz, served.u8_input) for _, image in frames]
    tensor = np.concatenate([p.tensor for p in preps]) if len(preps) > 1 else preps[0].tensor
    stacked = Prepared(tensor, preps[0].input_hw, preps[0].orig_hw)
    tracking = call.tracking  # batches are read one after another, in order: the motion's state follows
    warps = [None if tracking is None else tracking.camera_motion(image) for _, image in frames]
    return Batch([i for i, _ in frames], preps, stacked, (time.perf_counter() - start) * 1000, warps)


def _render_batch(
    call: ModelCall, outputs: dict[str, NDArray[Any]], batch: Batch, infer_ms: float
) -> list[dict[str, Any]]:
    """One answer object per frame (a worker thread), from one `Result` each, as the image route
    renders it; with `track`, each frame goes through the video's tracker first (batches are
    rendered one after the other, in the video's order)."""
    n = len(batch.indices)
    frames = []
    for i, (index, prep) in enumerate(zip(batch.indices, batch.preps, strict=True)):
        start = time.perf_counter()
        one = {name: array[i : i + 1] for name, array in outputs.items()}
        result = call.decode(one, call.served.spec, call.options, prep)
        if call.tracking is not None:
            stepped = time.perf_counter()
            result = call.tracking.step(result, batch.warps[i])
            record_tracked(str(call.served.slug), call.tracking.name, time.perf_counter() - stepped)
        rows, maps = render(result, call.options, call.contract)
        post_ms = (time.perf_counter() - start) * 1000
        speed = Speed(round(batch.read_ms / n, 2), round(infer_ms / n, 2), round(post_ms, 2))
        frames.append(call.contract.frame(index, rows, result, speed, maps))
    return frames


@dataclass(frozen=True)
class Inferred:
    batch: Batch
    outputs: dict[str, NDArray[Any]]
    answered: float  # perf_counter when Triton's answer arrived
    sent: float


IN_TRITON = 2  # batches a video keeps at Triton: one running, one queued behind it


async def _frames(
    call: ModelCall, reader: VideoReader, deadline: float
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The answer objects of each batch in order, from a pipeline that keeps the model busy:
    batch k+1 waits in Triton's queue while batch k runs, so the model never waits for the
    frontend; decoding batch k+2 and rendering batch k run beside them."""
    engine, served = call.engine, call.served
    size = max(1, served.max_batch)

    def spawn(coroutine: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        future = asyncio.ensure_future(coroutine)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # read even when abandoned
        return future

    async def infer(batch: Batch) -> Inferred:
        sent = time.perf_counter()
        try:
            left = deadline - asyncio.get_running_loop().time()
            outputs = await run_model(engine, served, batch.stacked, call.options, max(left, 0.001))
        except ServiceUnavailable:
            engine.catalog.mark_stale()
            raise
        return Inferred(batch, outputs, time.perf_counter(), sent)

    def decode_next() -> asyncio.Future[Batch | None]:
        return spawn(run_cpu(engine, _read_batch, call, reader, size))

    decoding: asyncio.Future[Batch | None] | None = decode_next()
    inferring: collections.deque[asyncio.Future[Inferred]] = collections.deque()
    previous = started = time.perf_counter()
    try:
        while True:
            while decoding is not None and len(inferring) < IN_TRITON:
                async with asyncio.timeout_at(deadline):
                    batch = await decoding
                decoding = None if batch is None else decode_next()
                if batch is not None:
                    inferring.append(spawn(infer(batch)))
            if not inferring:
                return
            async with asyncio.timeout_at(deadline):
                done = await inferring.popleft()
            # the model's time for this batch: from when it could start (sent, or the batch
            # before it answered) to its answer; not the time it waited in the queue
            infer_ms = (done.answered - max(done.sent, previous)) * 1000
            previous = done.answered
            async with asyncio.timeout_at(deadline):
                frames = await run_cpu(engine, _render_batch, call, done.outputs, done.batch, infer_ms)
            record_video_frames(str(served.slug), [f["speed"] for f in frames], time.perf_counter() - started)
            yield frames
            started = time.perf_counter()
    finally:
        # The reader is not released under a running read: `close` waits for it, on a worker
        # thread, so a cancelled request (client gone, deadline) returns at once either way.
        for future in (decoding, *inferring):
            if future is not None:
                future.cancel()
        asyncio.get_running_loop().run_in_executor(None, reader.close)


def _counts(call: ModelCall) -> dict[int, int] | None:
    """A tracked video's distinct ids by class, for its summary; None untracked."""
    return None if call.tracking is None else call.tracking.counts()


def _timeout(settings: Settings) -> InferenceTimeout:
    return InferenceTimeout(f"the video was not processed within {settings.video_timeout_s:g} s")


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, ServingError):
        return {400: "invalid", 413: "too_large", 504: "timeout"}.get(exc.status_code, "error")
    if isinstance(exc, asyncio.CancelledError | GeneratorExit | OSError):  # the client left
        return "disconnected"
    return "error"


class _ClosingStream(StreamingResponse):
    """Closes its line generator and releases what the request holds (its slot, reader and spool)
    however the response ends: uvicorn stops a stream whose client left by raising from `send`,
    which would leave the generator to the garbage collector, and one that never started runs no
    `finally` of its own."""

    def __init__(
        self, lines: AsyncGenerator[bytes, None], cleanup: contextlib.ExitStack, **kwargs: Any
    ) -> None:
        super().__init__(lines, **kwargs)
        self._lines = lines
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._lines.aclose()
            finally:
                self._cleanup.close()


async def predict_video(request: Request, call: ModelCall, settings: Settings, video: UploadFile) -> Response:
    """The whole answer, or an NDJSON stream when the client accepts one. `video` is closed here
    (or when the stream ends), on every path."""
    engine = call.engine
    cleanup = contextlib.ExitStack()
    cleanup.callback(video.file.close)
    outcome: BaseException | None = None
    streaming = False
    try:
        cleanup.enter_context(engine.in_flight.slot())
        deadline = asyncio.get_running_loop().time() + settings.video_timeout_s
        path = f"/proc/self/fd/{video.file.fileno()}"  # `fileno` moves a small spool onto disk first
        try:
            async with asyncio.timeout_at(deadline):
                reader = await run_cpu(
                    engine,
                    VideoReader,
                    path,
                    call.options.vid_stride,
                    settings.max_video_frames,
                    settings.max_image_pixels,
                )
        except TimeoutError:
            raise _timeout(settings) from None
        # idempotent, and on a worker thread: it waits for a read in progress
        cleanup.callback(asyncio.get_running_loop().run_in_executor, None, reader.close)
        if NDJSON in request.headers.get("accept", ""):
            ended: list[BaseException | None] = [asyncio.CancelledError()]  # until the stream says
            owned = cleanup.pop_all()  # the stream's now
            owned.callback(lambda: record_video_request(_outcome(ended[0])))
            lines = _stream(call, reader, deadline, settings, ended)
            streaming = True
            info = reader.info  # known before the first line: a client can show progress from the start
            headers = {"X-Video-Frames": str(info.frames), "X-Video-Fps": f"{info.fps:g}"}
            return _ClosingStream(lines, owned, media_type=NDJSON, headers=headers)
        return await _whole(request, call, reader, deadline, settings)
    except ClientGone:
        outcome = asyncio.CancelledError()
        return Response(status_code=CLIENT_CLOSED)
    except BaseException as exc:
        outcome = exc
        raise
    finally:
        if not streaming:
            record_video_request(_outcome(outcome))
        cleanup.close()


async def _whole(
    request: Request, call: ModelCall, reader: VideoReader, deadline: float, settings: Settings
) -> Response:
    frames: list[dict[str, Any]] = []
    try:
        async with contextlib.aclosing(_frames(call, reader, deadline)) as batches:
            async for batch in batches:
                frames.extend(batch)
                if await request.is_disconnected():
                    raise ClientGone  # nobody is waiting for the answer: stop at this batch
    except TimeoutError:
        raise _timeout(settings) from None
    body = call.contract.video(frames, reader.answered_info, call.call, _counts(call))
    return Response(orjson.dumps(body), media_type="application/json")


async def _stream(
    call: ModelCall,
    reader: VideoReader,
    deadline: float,
    settings: Settings,
    ended: list[BaseException | None],
) -> AsyncGenerator[bytes, None]:
    """One line per processed frame, then the summary, or a final error line; `ended[0]` says how
    it ended (None: whole)."""
    count = 0
    frames = _frames(call, reader, deadline)
    try:
        async for batch in frames:
            count += len(batch)
            yield b"".join(orjson.dumps(frame) + b"\n" for frame in batch)
        ended[0] = None
        end = call.contract.video_end(count, reader.answered_info, call.call, _counts(call))
        yield orjson.dumps(end) + b"\n"
    except TimeoutError:
        error = ended[0] = _timeout(settings)
        yield orjson.dumps(error.body(call.contract)) + b"\n"
    except ServingError as exc:
        ended[0] = exc
        yield orjson.dumps(exc.body(call.contract)) + b"\n"
    except BaseException as exc:
        ended[0] = exc
        raise
    finally:
        await frames.aclose()
