"""Camera streams: `POST /api/streams` defines one (a key with the `streams` scope), `GET` lists
them or shows one, `pause`, `resume`, `DELETE`; `GET /api/streams/{id}/events` follows its results
as Server-Sent Events.

A stream is its key's: another key's stream is "not found". The source URL is answered redacted
(`frontend.streams.sources.redact`): credentials and query strings stay in the database.
Errors are the Platform's `{"error": ...}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Header, Path
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from frontend.deps import ServicesDep, SettingsDep, StreamsCallerDep
from frontend.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from frontend.formats import json_response
from frontend.guards.auth import visible_model
from frontend.schemas import error_docs
from frontend.serving.predict import track_refusal
from frontend.streams.runner import KEEPALIVE_S, StreamRunner
from frontend.streams.sources import SourceRefused, checked_address, parse_source, redact
from frontend.streams.webhooks import check_webhook, new_secret, parse_webhook
from pipeline.contract import ApiFormat, PredictOptions
from store.clock import iso
from store.keys import Principal
from store.streams import StreamRow

router = APIRouter(responses=error_docs(401, 403, 429, 503))
StreamId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]+$")]
NOT_FOR_STREAMS = ("vid_stride", "track_session")  # a stream is its own frame rate and tracker
MAX_FPS = 60.0


class StreamRequest(BaseModel):
    """A stream's definition: the model, the source, `max_fps`, and any predict option by its
    predict name (`conf`, `iou`, `imgsz`, `track`, `tracker`, the tracker's thresholds...)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="the model's slug, owner/project/name")
    source: str = Field(description="rtsp://, rtsps://, or http(s):// serving MJPEG")
    max_fps: float = Field(5.0, gt=0, le=MAX_FPS, description="frames processed per second at most")
    format: ApiFormat | None = Field(
        None, description="the events' contract: seed or platform (default: the server's)"
    )
    webhook_url: str | None = Field(
        None,
        description="http(s):// URL each frame's event is POSTed to, signed (X-Trident-Signature); "
        "the signing secret is answered once, in this response's webhook.secret",
    )


def _options(extra: dict[str, Any]) -> PredictOptions:
    refused = [name for name in NOT_FOR_STREAMS if name in extra]
    if refused:
        raise InvalidRequest(f"{refused[0]} does not apply to a stream")
    unknown = sorted(set(extra) - set(PredictOptions.model_fields))
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0]!r}")
    try:
        return PredictOptions.model_validate(extra)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidRequest(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}") from None


def _body(row: StreamRow, runner: StreamRunner | None, secret: str | None = None) -> dict[str, Any]:
    """What is answered of a stream; the webhook's `secret` only in the creation's answer."""
    status, error = row.status, row.error
    if runner is not None and not row.paused:
        status, error = runner.status, runner.error
    options = PredictOptions.model_validate(row.options)
    body: dict[str, Any] = {
        "id": row.id,
        "model": row.model,
        "source": redact(row.source),
        "max_fps": row.max_fps,
        "format": row.format,
        "options": options.model_dump(exclude={"vid_stride", "track_session"}),
        "status": status,
        "error": error,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    if row.webhook_url:
        webhook: dict[str, Any] = {"url": redact(row.webhook_url)}
        if runner is not None and runner.webhook is not None:
            webhook = runner.webhook.counts()
        if secret is not None:
            webhook["secret"] = secret
        body["webhook"] = webhook
    if runner is not None:
        stats = runner.stats()
        body["frames"] = {
            "read": stats.read,
            "processed": stats.processed,
            "dropped": stats.dropped,
            "reconnects": stats.reconnects,
            "last_processed_at": stats.last_frame_at,
        }
        body["preview_viewers"] = runner.watchers
    return body


def _key(caller: Principal) -> str:
    if caller.anonymous:
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
    return caller.key_id


def _manager(caller: Principal) -> str:
    """The key of a caller that may change streams: a browser token may only watch them."""
    if caller.via_token:
        raise Forbidden("the Test tab's session may watch streams; changing one takes the API key")
    return _key(caller)


@router.post(
    "/api/streams",
    status_code=201,
    summary="Define a camera stream: its frames through a model, results as events",
    responses={201: {"description": "the stream"}, **error_docs(400, 404, 409)},
)
async def create_stream(
    definition: StreamRequest,
    caller: StreamsCallerDep,
    services: ServicesDep,
    settings: SettingsDep,
) -> Response:
    key = _manager(caller)
    options = _options(dict(definition.model_extra or {}))
    try:
        url = parse_source(definition.source)
        await checked_address(url, settings.source_allow_private)
        webhook = None
        if definition.webhook_url is not None:
            webhook = parse_webhook(definition.webhook_url)
            await check_webhook(webhook, settings.source_allow_private)
    except SourceRefused as exc:
        raise InvalidRequest(str(exc)) from None
    secret = None if webhook is None else new_secret()
    parts = definition.model.strip("/").split("/")
    if len(parts) != 3:
        raise InvalidRequest("model must be a slug: owner/project/name")
    served = await visible_model(services.engine.catalog, caller, *parts)
    if options.track:
        refusal = track_refusal(served.spec.task, video=True)
        if refusal is not None:
            raise InvalidRequest(refusal)
    given = options.model_dump(exclude_defaults=True)
    if "conf" not in given:  # `track` without conf predicts at 0.1: kept as decided here
        given["conf"] = options.conf
    row = await anyio.to_thread.run_sync(
        lambda: services.streams.store.create(
            key,
            caller.user,
            str(served.slug),
            url.raw,
            given,
            definition.max_fps,
            definition.format or settings.api_format,
            settings.streams_per_key,
            None if webhook is None else webhook.raw,
            secret,
        )
    )
    if row is None:
        raise Conflict(f"this key has {settings.streams_per_key} streams, the most it may have")
    await services.streams.sync()
    return json_response(_body(row, services.streams.local(row.id), secret), status_code=201)


@router.get("/api/streams", summary="Your key's camera streams")
async def list_streams(caller: StreamsCallerDep, services: ServicesDep) -> Response:
    rows = await anyio.to_thread.run_sync(services.streams.store.all, _key(caller))
    return json_response({"streams": [_body(r, services.streams.local(r.id)) for r in rows]})


async def _row(services: Any, caller: Principal, stream_id: str) -> StreamRow:
    row: StreamRow | None = await anyio.to_thread.run_sync(
        services.streams.store.get, stream_id, _key(caller)
    )
    if row is None:
        raise NotFound(f"no stream {stream_id!r} for this key")
    return row


@router.get("/api/streams/{stream_id}", summary="One stream: its status, last error and counts")
async def get_stream(stream_id: StreamId, caller: StreamsCallerDep, services: ServicesDep) -> Response:
    row = await _row(services, caller, stream_id)
    return json_response(_body(row, services.streams.local(row.id)))


async def _set_paused(services: Any, caller: Principal, stream_id: str, paused: bool) -> Response:
    key = _manager(caller)
    await _row(services, caller, stream_id)
    row = await anyio.to_thread.run_sync(services.streams.store.set_paused, stream_id, key, paused)
    if row is None:
        raise NotFound(f"no stream {stream_id!r} for this key")
    await services.streams.sync()
    return json_response(_body(row, services.streams.local(row.id)))


@router.post("/api/streams/{stream_id}/pause", summary="Stop reading the source until resumed")
async def pause_stream(stream_id: StreamId, caller: StreamsCallerDep, services: ServicesDep) -> Response:
    return await _set_paused(services, caller, stream_id, True)


@router.post("/api/streams/{stream_id}/resume", summary="Read the source again (also a failed stream)")
async def resume_stream(stream_id: StreamId, caller: StreamsCallerDep, services: ServicesDep) -> Response:
    return await _set_paused(services, caller, stream_id, False)


@router.delete("/api/streams/{stream_id}", status_code=204, summary="End and forget a stream")
async def delete_stream(stream_id: StreamId, caller: StreamsCallerDep, services: ServicesDep) -> Response:
    deleted = await anyio.to_thread.run_sync(services.streams.store.delete, stream_id, _manager(caller))
    if not deleted:
        raise NotFound(f"no stream {stream_id!r} for this key")
    await services.streams.sync()
    return Response(status_code=204)


PREVIEW_BOUNDARY = "trident-preview"
MAX_WATCHERS = 4  # preview clients per stream: each costs a connection, not a drawing


async def _preview(request: Request, runner: StreamRunner) -> AsyncIterator[bytes]:
    runner.watchers += 1
    try:
        shown = 0
        while not runner.closed:
            wake = runner.preview_next
            shot = runner.preview
            if shot is not None and shot[0] != shown:
                shown, jpeg = shot
                head = (
                    f"--{PREVIEW_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\nX-Frame: {shown}\r\n\r\n"
                )
                yield head.encode() + jpeg + b"\r\n"
            try:
                await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
            except TimeoutError:
                if await request.is_disconnected():
                    return
    finally:
        runner.watchers -= 1


@router.get(
    "/api/streams/{stream_id}/preview",
    summary="The latest processed frame with its results drawn, as MJPEG (for an <img>)",
    responses={200: {"content": {"multipart/x-mixed-replace": {}}}, **error_docs(404, 409)},
)
async def stream_preview(
    stream_id: StreamId, request: Request, caller: StreamsCallerDep, services: ServicesDep
) -> Response:
    row = await _row(services, caller, stream_id)
    runner = services.streams.local(row.id)
    if runner is None:
        raise Conflict("this stream runs in another process; ask the one that runs it (docs/api/streams.md)")
    if runner.watchers >= MAX_WATCHERS:
        raise Conflict(f"this stream's preview has {MAX_WATCHERS} viewers, the most it serves")
    headers = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _preview(request, runner),
        media_type=f"multipart/x-mixed-replace; boundary={PREVIEW_BOUNDARY}",
        headers=headers,
    )


def _status_event(runner: StreamRunner) -> bytes:
    data = orjson.dumps({"stream": runner.id, "status": runner.status, "error": runner.error})
    return b"event: status\ndata: " + data + b"\n\n"


async def _events(request: Request, runner: StreamRunner, last_id: str | None) -> AsyncIterator[bytes]:
    shown = None
    while not runner.closed:
        wake = runner.buffer.next
        if (runner.status, runner.error) != shown:
            shown = (runner.status, runner.error)
            yield _status_event(runner)
        for event_id, data in runner.buffer.after(last_id):
            last_id = event_id
            yield b"id: " + event_id.encode() + b"\nevent: frame\ndata: " + data + b"\n\n"
        try:
            await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
        except TimeoutError:
            if await request.is_disconnected():
                return
            yield b": keepalive\n\n"
    yield b"event: end\ndata: {}\n\n"


@router.get(
    "/api/streams/{stream_id}/events",
    summary="The stream's results as Server-Sent Events (Last-Event-ID resumes)",
    responses={200: {"content": {"text/event-stream": {}}}, **error_docs(404, 409)},
)
async def stream_events(
    stream_id: StreamId,
    request: Request,
    caller: StreamsCallerDep,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> Response:
    row = await _row(services, caller, stream_id)
    runner = services.streams.local(row.id)
    if runner is None:
        raise Conflict("this stream runs in another process; ask the one that runs it (docs/api/streams.md)")
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _events(request, runner, last_event_id), media_type="text/event-stream", headers=headers
    )
