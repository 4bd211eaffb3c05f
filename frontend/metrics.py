"""Prometheus metrics of the frontend, served at `/metrics` (the only module that imports prometheus_client).

With several uvicorn workers each worker is its own process, so the numbers live in files under
`PROMETHEUS_MULTIPROC_DIR` (prepared by `trident serve` before the workers start) and `/metrics`
aggregates them: whichever worker answers the scrape, the counts add up across all of them.

Labels are bounded: the model is the slug only once it resolved to a served model ("unknown"
otherwise, so random URLs cannot grow the series), the plan comes from `request.state.plan`
(set by the auth code; "unknown" until it does). Never a key or a token.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from dataclasses import fields
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontend.metrics_dir import MULTIPROC_ENV
from frontend.routes import predict_route
from pipeline.result import Speed
from store.deployments import LATENCY_BUCKETS_MS

UNKNOWN = "unknown"
STAGES = tuple(f.name for f in fields(Speed))  # the route's `speed`; preprocess = decode + letterbox
TRITON_ERROR_KINDS = ("DEADLINE_EXCEEDED", "UNAVAILABLE", "NOT_FOUND", "INTERNAL", "OTHER")
RATE_LIMIT_REASONS = ("rate", "quota", "auth")  # auth: failed authentications per IP
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "trident_requests",
    "Predict requests by model, task, HTTP status and plan",
    ["model", "task", "status", "plan"],
)
STAGE_SECONDS = Histogram(
    "trident_request_stage_seconds",
    "Predict latency per stage: preprocess (decode + letterbox), inference (Triton), postprocess, total",
    ["model", "stage"],
    buckets=BUCKETS,
)
IN_FLIGHT = Gauge("trident_requests_in_flight", "Predict requests being served", multiprocess_mode="livesum")
BYTES_RECEIVED = Counter("trident_request_bytes", "Request body bytes received by predict calls", ["model"])
RATE_LIMITED = Counter(
    "trident_rate_limit_rejections", "Requests refused by rate limits or quotas", ["plan", "reason"]
)
TRITON_ERRORS = Counter("trident_triton_errors", "Failed Triton inference calls by gRPC status", ["kind"])
INPUT_TRANSPORTS = ("shm", "grpc")
TRITON_INPUTS = Counter(
    "trident_triton_inputs",
    "Inference calls by how their input reached Triton: shared memory or the gRPC message",
    ["transport"],
)
DEPLOYMENT_REQUESTS = Counter(
    "trident_deployment_requests",
    "Deployment predict requests by deployment and HTTP status",
    ["deployment", "status"],
)
DEPLOYMENT_SECONDS = Histogram(
    "trident_deployment_request_seconds",
    "Deployment predict latency, in the buckets of the deployments' own per-minute aggregates",
    ["deployment"],
    buckets=tuple(ms / 1000 for ms in LATENCY_BUCKETS_MS),
)
TRITON_READY = Gauge(
    "trident_triton_ready",
    "1 when Triton answered ready at the last scrape",
    multiprocess_mode="livemostrecent",
)
TRACK_SESSIONS_ACTIVE = Gauge(
    "trident_track_sessions_active",
    "Live track sessions (all keys; read from the session store at each scrape)",
    multiprocess_mode="livemostrecent",
)
TRACKED_FRAMES = Counter(
    "trident_tracked_frames", "Frames through a tracker (videos and track sessions)", ["model", "tracker"]
)
TRACK_STEP_SECONDS = Histogram(
    "trident_track_step_seconds",
    "Time of one frame's tracker update",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)

# Series that exist from the start, so dashboards and alerts see 0 rather than nothing.
for _kind in TRITON_ERROR_KINDS:
    TRITON_ERRORS.labels(_kind)
for _transport in INPUT_TRANSPORTS:
    TRITON_INPUTS.labels(_transport)
for _reason in RATE_LIMIT_REASONS:
    RATE_LIMITED.labels(UNKNOWN, _reason)


def record_rate_limited(plan: str = UNKNOWN, reason: str = "rate") -> None:
    """Count one refused request (`reason`: "rate", "quota", or "auth" for failed authentications)."""
    RATE_LIMITED.labels(plan or UNKNOWN, reason if reason in RATE_LIMIT_REASONS else "rate").inc()


def record_triton_error(kind: str | None) -> None:
    """Count one failed Triton inference by its gRPC status (e.g. "StatusCode.UNAVAILABLE")."""
    name = (kind or "").rsplit(".", 1)[-1].upper()
    TRITON_ERRORS.labels(name if name in TRITON_ERROR_KINDS else "OTHER").inc()


def record_input_transport(transport: str) -> None:
    """Count one inference call whose input went by `transport` ("shm" or "grpc")."""
    TRITON_INPUTS.labels(transport if transport in INPUT_TRANSPORTS else "grpc").inc()


def record_tracked(model: str, tracker: str, seconds: float) -> None:
    """Count one tracked frame of a served model (video or session) and time its tracker update."""
    TRACKED_FRAMES.labels(model, tracker).inc()
    TRACK_STEP_SECONDS.observe(seconds)


def _multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


if _multiprocess():  # a worker leaving takes its live gauges (in-flight, ready) with it
    atexit.register(multiprocess.mark_process_dead, os.getpid())


async def metrics_endpoint(request: Request) -> Response:
    """The Prometheus exposition; checks Triton's readiness first so `trident_triton_ready` is current."""
    services = getattr(request.app.state, "services", None)
    triton = services.engine.triton if services is not None else None
    TRITON_READY.set(1 if triton is not None and await triton.is_ready() else 0)
    sessions = getattr(services, "track_sessions", None)
    if sessions is not None:
        with contextlib.suppress(Exception):  # an unreachable Redis leaves the last count
            TRACK_SESSIONS_ACTIVE.set(await sessions.active())
    if _multiprocess():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI: times predict calls (a model's or a deployment's), counts their bytes and outcome,
    reads what the route left in state (the model that answered, its task, the stages' times)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not predict_route(scope["path"]):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = _with_total(message, time.perf_counter() - start)
            await send(message)

        start = time.perf_counter()
        IN_FLIGHT.inc()
        try:
            await self.app(scope, counting_receive, status_send)
        finally:
            IN_FLIGHT.dec()
            model = str(state.get("model") or UNKNOWN)
            task = str(state.get("task") or UNKNOWN)
            plan = str(state.get("plan") or UNKNOWN)
            REQUESTS.labels(model, task, str(status), plan).inc()
            BYTES_RECEIVED.labels(model).inc(received)
            STAGE_SECONDS.labels(model, "total").observe(time.perf_counter() - start)
            for stage, ms in (state.get("timings") or {}).items():
                if stage in STAGES:
                    STAGE_SECONDS.labels(model, stage).observe(float(ms) / 1000)


def _with_total(start: Message, seconds: float) -> Message:
    """`total` joins the route's Server-Timing stages, on every answer (also a 503 or a 401), so a
    client can tell the server's share of a latency from the network's and its own."""
    headers = list(start.get("headers", []))
    total = f"total;dur={seconds * 1000:.2f}".encode()
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"server-timing":
            headers[i] = (name, value + b", " + total)
            break
    else:
        headers.append((b"server-timing", total))
    return {**start, "headers": headers}


def install(app: Any) -> None:
    """Add the middleware and the `/metrics` route to a Starlette/FastAPI app."""
    app.add_middleware(MetricsMiddleware)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)


# `source` intake (frontend.serving.source): one count per `source` field read, by how it ended. A closed set:
# never the URL, its host or its query (they may carry secrets), so the series cannot grow.
SOURCE_OUTCOMES = (
    "ok",  # URL fetched
    "base64",  # base64 decoded
    "invalid",  # too long, empty, malformed URL or data URI
    "invalid_base64",
    "refused_scheme",  # not http(s)
    "refused_address",  # loopback, private, link-local, ... (TRIDENT_SOURCE_ALLOW_PRIVATE off)
    "unresolvable",
    "network_error",  # connect, TLS or protocol failure
    "timeout",
    "http_error",  # non-2xx final answer
    "redirects",  # more than allowed
    "too_large",
)
SOURCE_FETCHES = Counter(
    "trident_source_fetches", "`source` fields read (URL fetched or base64 decoded) by outcome", ["outcome"]
)
for _outcome in SOURCE_OUTCOMES:
    SOURCE_FETCHES.labels(_outcome)


def record_source_fetch(outcome: str) -> None:
    """Count one `source` read by `outcome` (one of SOURCE_OUTCOMES; anything else counts as "invalid")."""
    SOURCE_FETCHES.labels(outcome if outcome in SOURCE_OUTCOMES else "invalid").inc()


# Restarts of `trident run`'s children, counted by the supervising `trident run` process itself: it
# shares the frontend's PROMETHEUS_MULTIPROC_DIR, so whichever worker answers `/metrics` reports them.
SUPERVISED_PROCESSES = ("tritonserver", "frontend", "worker")
PROCESS_RESTARTS = Counter(
    "trident_process_restarts", "Children restarted by `trident run` after an unexpected exit", ["process"]
)


# Videos (frontend.serving.video): requests by how they ended, and every processed frame. A frame's stages
# join the image stages in `trident_request_stage_seconds`, plus `frame`: wall time per frame of
# its batch, the inverse of the frames per second a video is served at.
VIDEO_OUTCOMES = ("ok", "invalid", "too_large", "timeout", "disconnected", "error")
VIDEO_REQUESTS = Counter("trident_video_requests", "Video predict requests by outcome", ["outcome"])
VIDEO_FRAMES = Counter("trident_video_frames", "Video frames run through a model", ["model"])
for _outcome in VIDEO_OUTCOMES:
    VIDEO_REQUESTS.labels(_outcome)


def record_video_request(outcome: str) -> None:
    """Count one video request by `outcome` (one of VIDEO_OUTCOMES; anything else counts as "error")."""
    VIDEO_REQUESTS.labels(outcome if outcome in VIDEO_OUTCOMES else "error").inc()


def record_video_frames(model: str, speeds: list[dict[str, float]], wall_s: float) -> None:
    """Count one batch of processed frames: their stages (ms, as `speed`) and wall seconds per frame."""
    if not speeds:
        return
    VIDEO_FRAMES.labels(model).inc(len(speeds))
    per_frame = STAGE_SECONDS.labels(model, "frame")
    for speed in speeds:
        per_frame.observe(wall_s / len(speeds))
        for stage in STAGES:
            STAGE_SECONDS.labels(model, stage).observe(speed[stage] / 1000)


def record_deployment(deployment: str, status: int, seconds: float) -> None:
    """One deployment predict answer (the same numbers its metrics route aggregates)."""
    DEPLOYMENT_REQUESTS.labels(deployment, str(status)).inc()
    DEPLOYMENT_SECONDS.labels(deployment).observe(seconds)


# Camera streams (`frontend.streams`): labelled by the stream's id alone, never its URL (it may
# hold credentials). Rates are the counters' `rate()`.
STREAM_FRAMES = Counter(
    "trident_stream_frames",
    "Frames of a camera stream: processed (through the model) or dropped (replaced by a newer "
    "one before the model was free, or skipped by max_fps)",
    ["stream", "outcome"],
)
STREAM_LAG_SECONDS = Histogram(
    "trident_stream_lag_seconds",
    "From a frame's capture (read whole from the source) to its result",
    ["stream"],
    buckets=BUCKETS,
)
STREAM_RECONNECTS = Counter(
    "trident_stream_reconnects", "Failed connections or drops of a source", ["stream"]
)


STREAM_WEBHOOK_DELIVERIES = Counter(
    "trident_stream_webhook_deliveries", "Events a stream's webhook accepted (a 2xx)", ["stream"]
)
STREAM_WEBHOOK_FAILURES = Counter(
    "trident_stream_webhook_failures",
    "Events a stream's webhook never accepted (a 4xx, or every try failed)",
    ["stream"],
)
STREAM_WEBHOOK_RETRIES = Counter(
    "trident_stream_webhook_retries", "Webhook tries repeated after a 5xx, 408, 429 or timeout", ["stream"]
)
STREAM_WEBHOOK_DROPPED = Counter(
    "trident_stream_webhook_dropped",
    "Events dropped from a stream's full webhook queue (the oldest waiting)",
    ["stream"],
)


def record_stream_webhook(stream: str, outcome: str) -> None:
    """`delivered`, `failed`, `retried` or `dropped`."""
    {
        "delivered": STREAM_WEBHOOK_DELIVERIES,
        "failed": STREAM_WEBHOOK_FAILURES,
        "retried": STREAM_WEBHOOK_RETRIES,
        "dropped": STREAM_WEBHOOK_DROPPED,
    }[outcome].labels(stream).inc()


def record_stream_frame(stream: str, lag_s: float) -> None:
    STREAM_FRAMES.labels(stream, "processed").inc()
    STREAM_LAG_SECONDS.labels(stream).observe(lag_s)


def record_stream_dropped(stream: str, count: int) -> None:
    if count > 0:
        STREAM_FRAMES.labels(stream, "dropped").inc(count)


def record_stream_reconnect(stream: str) -> None:
    STREAM_RECONNECTS.labels(stream).inc()
