"""Running camera streams: one `StreamRunner` per stream this process holds the lease of, owned by
`Streams`, which the app's lifespan starts and stops.

A runner is a reader thread (`frontend.streams.readers.Reader`) filling a one-frame slot, and a
task on the event loop that takes the newest frame at most `max_fps` times a second and runs it
through the same engine as the predict API: decode and letterbox on the shared CPU pool, one Triton
call, decode and render on the pool, through the stream's tracker when `track` is on. One frame of
a stream is in flight at a time, so a stream never holds more than one inference and never takes
one of the predict API's in-flight slots (`InFlight`): a predict is never refused for a stream.

Each result is an event (`EventBuffer`): the frame's answer in the stream's contract, as a video
frame of the predict API renders it, plus the stream, the frame number, its capture time and lag.
The last `stream_events_buffer` events are kept for clients resuming with `Last-Event-ID`.

`Streams.sync` runs every few seconds (and right after an API call changed a stream here): it
renews this process's leases and takes free or expired ones (`store.streams.StreamStore.claim`),
starts runners for held streams, pauses, resumes and stops them as their rows say.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio.to_thread
import cv2
import numpy as np
import orjson
from numpy.typing import NDArray

from core.settings import Settings
from core.slug import Slug
from frontend.metrics import record_stream_dropped, record_stream_frame, record_stream_reconnect
from frontend.serving.catalog import ServedModel
from frontend.serving.engine import Engine
from frontend.serving.inference import decode_and_render, run_cpu, run_model
from frontend.streams.preview import annotate
from frontend.streams.readers import Frame, LatestFrame, Reader, ReaderConfig
from frontend.streams.sources import parse_source
from frontend.streams.webhooks import Webhook, WebhookConfig
from pipeline.contract import ApiFormat, PredictOptions
from pipeline.decode import decoder_for
from pipeline.formats import FORMATS
from pipeline.prepare import Prepared, prepare
from pipeline.result import Result, Speed
from pipeline.tracking import VideoTracking, Warp
from store.streams import StreamRow, StreamStore

log = logging.getLogger("trident.streams")
KEEPALIVE_S = 15.0


class EventBuffer:
    """A stream's last events, by id `<epoch>-<frame>`: the epoch changes when the runner starts
    again (another process, a restart), so an id from an earlier run resumes from the oldest kept."""

    def __init__(self, size: int) -> None:
        self.epoch = f"{time.time_ns() // 1_000_000:x}"
        self.events: deque[tuple[int, bytes]] = deque(maxlen=size)
        self._next = asyncio.Event()

    def add(self, number: int, data: bytes) -> None:
        self.events.append((number, data))
        self.wake()

    def wake(self) -> None:
        self._next.set()
        self._next = asyncio.Event()

    @property
    def next(self) -> asyncio.Event:
        """Set at the next event (take it before reading, then wait on it)."""
        return self._next

    def after(self, last_id: str | None) -> list[tuple[str, bytes]]:
        """The kept events after `last_id` (all of them for none, or an id of another run)."""
        last = 0
        if last_id:
            epoch, _, number = last_id.partition("-")
            if epoch == self.epoch and number.isdigit():
                last = int(number)
        return [(f"{self.epoch}-{n}", data) for n, data in self.events if n > last]


@dataclass(frozen=True)
class Stats:
    read: int
    processed: int
    dropped: int
    reconnects: int
    last_frame_at: str


def _prepare(
    image: NDArray[np.uint8],
    served: ServedModel,
    imgsz: int,
    tracking: VideoTracking | None,
    record: Path | None,
) -> tuple[Prepared, Warp | None]:
    if record is not None:  # tests: the exact frame the model saw
        cv2.imwrite(str(record), image)
    warp = None if tracking is None else tracking.camera_motion(image)  # frames come one at a time
    return prepare(image, served.spec, imgsz, served.u8_input), warp


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


class StreamRunner:
    """One stream held by this process: its reader, its processing task, its events."""

    def __init__(self, row: StreamRow, streams: Streams) -> None:
        self.row = row
        self.id = row.id
        self.streams = streams
        settings = streams.settings
        self.url = parse_source(row.source)
        self.options = PredictOptions.model_validate(row.options)
        self.contract = FORMATS[cast(ApiFormat, row.format)]  # checked by the API when it was created
        self.buffer = EventBuffer(settings.stream_events_buffer)
        self.slot = LatestFrame()
        self.tracking = VideoTracking(self.options) if self.options.track else None
        self.status, self.error = ("paused", "") if row.paused else ("connecting", "")
        self.processed = 0
        self.reconnects = 0
        self.last_frame_at = ""
        self.closed = False
        self.reader: Reader | None = None
        self.task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._dropped_seen = 0
        self.config = ReaderConfig(
            allow_private=settings.source_allow_private,
            connect_timeout_s=settings.stream_connect_timeout_s,
            read_timeout_s=settings.stream_read_timeout_s,
            backoff_max_s=settings.stream_backoff_max_s,
            give_up_after=settings.stream_give_up_after,
            max_pixels=settings.max_image_pixels,
            max_part_bytes=settings.max_upload_bytes,
        )
        self.watchers = 0  # preview clients: frames are drawn only while there are some
        self.preview: tuple[int, bytes] | None = None  # (frame number, JPEG)
        self._preview_next = asyncio.Event()
        self.webhook: Webhook | None = None
        if row.webhook_url and row.webhook_secret:
            config = WebhookConfig(
                allow_private=settings.source_allow_private,
                queue=settings.stream_webhook_queue,
                attempts=settings.stream_webhook_attempts,
                timeout_s=settings.stream_webhook_timeout_s,
                backoff_max_s=settings.stream_webhook_backoff_max_s,
            )
            self.webhook = Webhook(row.id, row.webhook_url, row.webhook_secret, config)
        self.record = None
        if settings.stream_record_dir is not None:
            self.record = settings.stream_record_dir / self.id
            self.record.mkdir(parents=True, exist_ok=True)

    @property
    def reading(self) -> bool:
        return self.reader is not None

    def stats(self) -> Stats:
        return Stats(self.slot.read, self.processed, self.slot.dropped, self.reconnects, self.last_frame_at)

    def start(self) -> None:
        """Connect and process (a new reader; the tracker, events and counts go on)."""
        if self.reader is not None:
            return
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self.slot.wake = wake
        if self.webhook is not None:
            self.webhook.start()  # runs until close: a paused stream's queued events still go
        reader = Reader(self.url, self.config, self.slot, lambda s, e: self._report(loop, s, e))
        reader.on_reconnect = self._reconnected
        self.reader = reader
        self._set_status("connecting", "")
        self.task = asyncio.create_task(self._process(), name=f"stream {self.id}")
        reader.start()

    async def stop(self, status: str | None = None) -> None:
        """Stop reading and processing (`status`, e.g. `paused`, shown until the next start)."""
        reader, self.reader = self.reader, None
        task, self.task = self.task, None
        if reader is not None:
            reader.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if reader is not None:
            await anyio.to_thread.run_sync(reader.join, self.config.read_timeout_s + 1)
        if status is not None:
            self._set_status(status, "")

    @property
    def preview_next(self) -> asyncio.Event:
        """Set at the next drawn frame (or the stream's end): take it, then wait on it."""
        return self._preview_next

    def _preview_wake(self) -> None:
        self._preview_next.set()
        self._preview_next = asyncio.Event()

    async def close(self) -> None:
        await self.stop()
        if self.webhook is not None:
            await self.webhook.close()
        self.closed = True
        self.buffer.wake()
        self._preview_wake()

    def _reconnected(self) -> None:
        self.reconnects += 1
        record_stream_reconnect(self.id)

    def _report(self, loop: asyncio.AbstractEventLoop, status: str, error: str) -> None:
        """The reader's word (its thread): into the database, then onto the loop."""
        try:
            self.streams.store.set_status(self.id, status, error)
        except Exception:
            log.exception("stream %s: writing its status failed", self.id)
        with contextlib.suppress(RuntimeError):  # the loop closed: the process is ending
            loop.call_soon_threadsafe(self._set_status, status, error)

    def _set_status(self, status: str, error: str) -> None:
        self.status, self.error = status, error
        if status == "failed":
            self.reader = None  # its thread has ended; a resume starts a new one
        self.buffer.wake()  # event clients say the new status

    async def _process(self) -> None:
        interval = 1.0 / self.row.max_fps
        next_at = 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            wait = next_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # frames arriving meanwhile replace each other: drops
            frame = self.slot.take()
            if frame is None:
                continue
            next_at = max(next_at + interval, time.monotonic())
            dropped = self.slot.dropped
            record_stream_dropped(self.id, dropped - self._dropped_seen)
            self._dropped_seen = dropped
            try:
                await self._infer(frame)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Triton away, the model unloaded: said, and the next frame tried
                detail = getattr(exc, "detail", "") or type(exc).__name__
                if self.error != f"inference failed: {detail}":
                    log.warning("stream %s: inference failed: %s", self.id, detail)
                self.error = f"inference failed: {detail}"
                await asyncio.sleep(min(interval, 1.0))

    async def _infer(self, frame: Frame) -> None:
        engine: Engine = self.streams.engine
        served = await engine.catalog.get(Slug.parse(self.row.model))
        options = self.options
        record = None if self.record is None else self.record / f"{frame.number:06d}.png"
        start = time.perf_counter()
        tracking = self.tracking
        prep, warp = await run_cpu(engine, _prepare, frame.image, served, options.imgsz, tracking, record)
        pre_ms = _ms(start)
        start = time.perf_counter()
        outputs = await run_model(engine, served, prep, options)
        infer_ms = _ms(start)
        start = time.perf_counter()

        def track(result: Result) -> Result:
            assert tracking is not None
            return tracking.step(result, warp)

        result, rows, maps = await run_cpu(
            engine,
            decode_and_render,
            decoder_for(served.spec),
            outputs,
            served,
            options,
            prep,
            self.contract,
            None if tracking is None else track,
        )
        speed = Speed(pre_ms, infer_ms, _ms(start))
        lag_s = time.monotonic() - frame.captured_mono
        body = self.contract.frame(frame.number, rows, result, speed, maps)
        captured = iso_precise(frame.captured)
        event: dict[str, Any] = {
            "stream": self.id,
            "frame": frame.number,
            "captured_at": captured,
            "lag_ms": round(lag_s * 1000, 2),
            **body,
        }
        data = orjson.dumps(event)
        self.buffer.add(frame.number, data)
        if self.webhook is not None:
            self.webhook.put(f"{self.buffer.epoch}-{frame.number}", data)
        self.processed += 1
        self.last_frame_at = captured
        if self.error.startswith("inference failed"):
            self.error = ""
        record_stream_frame(self.id, lag_s)
        if self.watchers > 0:
            jpeg = await run_cpu(engine, annotate, frame.image, result)
            self.preview = (frame.number, jpeg)
            self._preview_wake()


def iso_precise(seconds: float) -> str:
    """`2026-12-07T10:00:00.123Z` (milliseconds) from `time.time()`."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds * 1000) % 1000:03d}Z"


class Streams:
    """This process's runners, kept in step with the database's rows and leases."""

    def __init__(self, store: StreamStore, engine: Engine, settings: Settings) -> None:
        self.store = store
        self.engine = engine
        self.settings = settings
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.runners: dict[str, StreamRunner] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def period_s(self) -> float:
        return min(self.settings.stream_lease_s / 3, 2.0)

    def start(self) -> None:
        if self.settings.streams_run:
            self._task = asyncio.create_task(self._sync_every(), name="streams sync")

    async def _sync_every(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:  # the database briefly away: leases last longer than a period
                log.exception("syncing streams failed")
            await asyncio.sleep(self.period_s)

    async def sync(self) -> None:
        if not self.settings.streams_run:
            return
        async with self._lock:
            rows = await anyio.to_thread.run_sync(self.store.claim, self.owner, self.settings.stream_lease_s)
            held = {row.id: row for row in rows}
            for stream_id in [i for i in self.runners if i not in held]:
                await self.runners.pop(stream_id).close()
            for row in held.values():
                runner = self.runners.get(row.id)
                if runner is None:
                    try:
                        runner = self.runners[row.id] = StreamRunner(row, self)
                    except Exception as exc:  # a row this version cannot read: said, not fatal
                        log.warning("stream %s cannot start: %s", row.id, type(exc).__name__)
                        continue
                runner.row = row
                if row.paused and runner.status != "paused":
                    await runner.stop("paused")
                elif not row.paused and not runner.reading and row.status != "failed":
                    await anyio.to_thread.run_sync(self.store.set_status, row.id, "connecting", "")
                    runner.start()

    def local(self, stream_id: str) -> StreamRunner | None:
        return self.runners.get(stream_id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:
            for runner in self.runners.values():
                await runner.close()
            self.runners.clear()
        if self.settings.streams_run:
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.store.release, self.owner)
