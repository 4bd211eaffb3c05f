"""The FastAPI application: `create_app(settings)` and its lifespan (Triton channel, catalog)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from core import __version__
from core.settings import Settings
from frontend.api.account import router as account_router
from frontend.api.deployments import install_log_handler
from frontend.api.deployments import router as deployments_router
from frontend.api.docs import router as docs_router
from frontend.api.images import router as images_router
from frontend.api.models import router as platform_models_router
from frontend.api.pages import router as web_router
from frontend.api.predict import router
from frontend.api.streams import router as streams_router
from frontend.api.track_sessions import router as track_sessions_router
from frontend.api.uploads import UPLOAD_PATH
from frontend.api.uploads import router as uploads_router
from frontend.deployments.deployer import Deployer
from frontend.deployments.lifecycle import STALE_AFTER_S, Lifecycle
from frontend.deps import Services
from frontend.errors import InvalidRequest, ServingError, refusal
from frontend.formats import resolve_format
from frontend.guards.body_limit import FORM_OVERHEAD_BYTES, BodyLimit
from frontend.guards.ratelimit import FailedAuthLimiter, MemoryCounter, RateLimiter, RedisCounter
from frontend.guards.security import SECURITY_HEADERS, SecurityHeaders
from frontend.guards.shedding import ShedAtCapacity
from frontend.metrics import install as install_metrics
from frontend.serving.catalog import Catalog
from frontend.serving.engine import Engine, InFlight
from frontend.serving.loader import ModelLoader
from frontend.serving.triton import Triton
from frontend.streams.runner import Streams
from pipeline.decode import ModelOutputError
from pipeline.formats import Format
from store.clock import Clock, utc_now
from store.deployments import DeploymentStore, Telemetry
from store.keycache import KeyCache
from store.keys import LAST_USE_FLUSH_S, KeyStore
from store.streams import StreamStore
from store.track_sessions import MemoryTrackSessions, RedisTrackSessions, TrackSessions
from store.uploads import UploadStore
from store.usage import UsageLog

log = logging.getLogger("trident.frontend")


def _flush(keys: KeyStore, usage: UsageLog) -> None:
    keys.flush_last_used()
    usage.flush()


async def _flush_every(seconds: float, keys: KeyStore, usage: UsageLog) -> None:
    """Last use and usage counts reach the database in one batch a minute, not a write per request."""
    while True:
        await asyncio.sleep(seconds)
        await anyio.to_thread.run_sync(_flush, keys, usage)


async def _flush_telemetry_every(seconds: float, telemetry: Telemetry) -> None:
    """Deployments' counts and log lines: one batch every few seconds, not a write per request."""
    while True:
        await asyncio.sleep(seconds)
        await anyio.to_thread.run_sync(telemetry.flush)


async def _reconcile(lifecycle: Lifecycle) -> None:
    """Deployments a dead process left half changed (what a crash leaves is only touched once it
    is too old to be another process's change in flight)."""
    try:
        await lifecycle.reconcile()
    except Exception:  # the database or the repository may be briefly unreachable
        logging.getLogger("trident.deployments").exception("reconciling deployments failed")


async def _reconcile_every(seconds: float, lifecycle: Lifecycle) -> None:
    while True:
        await asyncio.sleep(seconds)
        await _reconcile(lifecycle)


def create_app(settings: Settings | None = None, clock: Clock = utc_now) -> FastAPI:
    """The app; `clock` is the key store's (tests pass their own to live through expiry)."""
    settings = settings or Settings()
    in_flight = InFlight(settings.max_in_flight)  # the route's slots and the shedding middleware's

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        triton = Triton(
            settings.triton_grpc_url,
            settings.triton_timeout_s,
            shared_memory=settings.triton_shared_memory,
            max_regions=settings.max_in_flight,
        )
        catalog = Catalog(triton, settings.model_refresh_s)
        counter = (
            RedisCounter(settings.redis_url, settings.redis_timeout_s)
            if settings.redis_url
            else MemoryCounter()
        )
        cache = KeyCache(settings.key_cache_s) if settings.key_cache_s > 0 else None
        keys = KeyStore(settings.key_store_url, clock, cache)
        secret = settings.token_secret.get_secret_value().encode() or keys.token_secret()
        usage = UsageLog(keys.engine)
        telemetry = Telemetry(keys.engine, settings.deployment_log_lines)
        deployer = Deployer(triton, DeploymentStore(keys.engine), settings.model_repository.resolve())
        lifecycle = Lifecycle(deployer, telemetry, keys.clock)
        idle_s, per_key = settings.track_session_idle_s, settings.track_sessions_per_key
        sessions: TrackSessions = (
            RedisTrackSessions(settings.redis_url, idle_s, per_key, settings.redis_timeout_s)
            if settings.redis_url
            else MemoryTrackSessions(idle_s, per_key)
        )
        engine = Engine(
            triton,
            catalog,
            in_flight,
            CapacityLimiter(settings.cpu_threads),
            settings.cpu_nice,
        )
        streams = Streams(StreamStore(keys.engine, keys.clock), engine, settings)
        app.state.services = Services(
            engine=engine,
            keys=keys,
            limiter=RateLimiter(counter),
            auth_failures=FailedAuthLimiter(counter, settings.auth_failures_per_minute),
            token_secret=secret,
            usage=usage,
            deployments=deployer.store,
            deployer=deployer,
            lifecycle=lifecycle,
            telemetry=telemetry,
            track_sessions=sessions,
            streams=streams,
            uploads=UploadStore(keys.engine, keys.clock),
        )
        refresher = asyncio.create_task(ModelLoader(triton, catalog, settings.model_refresh_s).run())
        flusher = asyncio.create_task(_flush_every(LAST_USE_FLUSH_S, keys, usage))
        telemetry_flusher = asyncio.create_task(
            _flush_telemetry_every(settings.deployment_flush_s, telemetry)
        )
        await _reconcile(lifecycle)  # before the first request: a restart repairs what a crash left
        reconciler = asyncio.create_task(_reconcile_every(STALE_AFTER_S / 2, lifecycle))
        streams.start()  # the streams this process holds the lease of, from the database
        # Everything alive now (modules, the app, about 115,000 objects) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it (70 ms with
        # the GIL held, every few hundred requests, measured).
        gc.collect()
        gc.freeze()
        # The event loop shares the GIL with the CPU pool's threads: at Python's default 5 ms switch
        # interval a busy pool delays each loop wake-up by up to 5 ms, and a refusal at capacity
        # (a few wake-ups) waited tens of ms under overload; 1 ms halved the refusals' p99 server
        # time (benchmarks/README.md, "Overload").
        sys.setswitchinterval(0.001)
        try:
            yield
        finally:
            gc.unfreeze()
            await streams.close()  # before Triton's channel: a runner may be mid-frame
            for task in (refresher, flusher, telemetry_flusher, reconciler):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await deployer.close()
            await anyio.to_thread.run_sync(_flush, keys, usage)
            await anyio.to_thread.run_sync(telemetry.flush)
            await triton.close()
            if isinstance(counter, RedisCounter):
                await counter.close()
            await sessions.close()
            keys.close()

    app = FastAPI(
        title="Trident",
        version=__version__,
        description="Ultralytics YOLO models on Triton, behind the Ultralytics Platform inference API.",
        lifespan=lifespan,
        docs_url=None,  # `frontend.api.docs` serves it without an inline script
        redoc_url=None,
    )
    app.state.settings = settings
    app.include_router(router)
    app.include_router(platform_models_router)
    app.include_router(images_router)
    app.include_router(account_router)
    app.include_router(deployments_router)
    app.include_router(track_sessions_router)
    app.include_router(streams_router)
    app.include_router(uploads_router)
    install_log_handler()
    app.add_middleware(
        BodyLimit,
        max_body_bytes=max(settings.max_upload_bytes, settings.max_video_bytes) + FORM_OVERHEAD_BYTES,
        default_format=settings.api_format,
        exempt=UPLOAD_PATH,  # the upload PUT keeps to its own, larger limit (`TRIDENT_UPLOAD_MAX_BYTES`)
    )
    app.include_router(web_router)
    app.include_router(docs_router)
    app.add_middleware(ShedAtCapacity, in_flight=in_flight, default_format=settings.api_format)
    install_metrics(app)  # /metrics and the predict-call middleware (it times and counts refusals too)
    app.add_middleware(SecurityHeaders)  # outermost: also on the 413 answered before the app runs

    def api_format(request: Request) -> Format:
        return resolve_format(request.url.path, request.query_params.get("format"), settings.api_format)

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, exc: ServingError) -> Response:
        return exc.to_response(api_format(request))

    @app.exception_handler(ModelOutputError)
    async def model_output_error(request: Request, exc: ModelOutputError) -> Response:
        return ServingError(str(exc)).to_response(api_format(request))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return InvalidRequest(f"{where}: {first.get('msg', 'invalid')}").to_response(api_format(request))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        contract = api_format(request)
        status, headers = exc.status_code, dict(exc.headers or {})
        if status == 405 and not contract.has_405:  # an operation the contract lacks
            status, headers = 404, {}
        detail = str(exc.detail) if status == exc.status_code else f"no {request.method} on this path"
        return refusal(status, detail, headers).to_response(contract)  # keeps `Allow` on a 405

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")  # the trace goes to the log, never to the client
        error = ServingError("unexpected error; the request was not processed")
        response = error.to_response(api_format(request))
        response.headers.update(SECURITY_HEADERS)  # answered outside `SecurityHeaders`
        return response

    return app
