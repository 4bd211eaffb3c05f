"""The Platform's deployments API (the SDK's `deployments` resource, `ul cloud deployments ...`):
list, create, retrieve, update (start, stop, replace, rollback), delete, health, metrics, logs,
and `POST /api/deployments/{owner}/{deployment}/predict`.

Only the owner sees a deployment: any other caller gets 404 on every route, as for private models
(management needs the `deployments` scope, predict the `predict` scope). Lifecycle changes run one
at a time per deployment; see `frontend.deployments.deployer` for what replace does on Triton. Every predict
answer and lifecycle step becomes one JSON log line (request id, deployment, status, latency;
never a key) in the deployment's recent lines and in the process log, and the request is counted
in the per-minute aggregates the metrics route reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from core.slug import InvalidSlugError, Slug
from frontend.deployments.deployer import Deployer, Source
from frontend.deps import (
    DeploymentsCallerDep,
    PredictCallerDep,
    QuotaDep,
    ServicesDep,
    SettingsDep,
)
from frontend.errors import (
    Conflict,
    DeploymentNotFound,
    InvalidRequest,
    ModelNotFound,
    RateLimited,
    ServiceUnavailable,
    ServingError,
)
from frontend.formats import json_response
from frontend.guards.auth import client_ip, may_see
from frontend.guards.ratelimit import Plan
from frontend.metrics import record_deployment
from frontend.routes import DEPLOYMENT_PREDICT
from frontend.schemas import error_docs
from frontend.serving.form import read_predict_form
from frontend.serving.predict import predict_form
from pipeline.formats import PLATFORM
from store.audit import Actor
from store.clock import iso
from store.deployments import (
    RANGES,
    SEVERITIES,
    Change,
    Deployment,
    DeploymentExists,
    LogLine,
    process_log_line,
)
from store.keys import Principal

# every answer these routes can give besides 200, in the Platform's error shape: 400 a bad parameter,
# 409 a name taken, 413 a body too large, 422 a model that failed to load or warm up, 504 a deadline
DEPLOYMENT_ERRORS = error_docs(400, 401, 403, 404, 409, 410, 413, 422, 429, 503, 504)
router = APIRouter(responses=DEPLOYMENT_ERRORS)
log = logging.getLogger("trident.deployments")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
STOPPED_RETRY_S = 30
DEPLOYING_RETRY_S = 5


def install_log_handler() -> None:
    """Deployment log lines go to stderr as they are (one JSON object a line), whatever the rest of
    the process logs; called once by `create_app`."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


# --- reading


def _item(d: Deployment, base_url: str) -> dict[str, Any]:
    """The SDK's `DeploymentsListResponseDeploymentsItem` (retrieve adds `metadata`)."""
    item: dict[str, Any] = {
        "id": d.id,
        "owner": d.owner,
        "project": d.project,
        "model": d.model,
        "deployment": d.name,
        "name": d.display_name,
        "status": d.status,
        "region": d.region,
        "serviceUrl": f"{base_url}/api/deployments/{d.owner}/{d.name}/predict",
        "resources": {"cpu": d.instances, "memoryGi": d.memory_gi, "minInstances": 1, "maxInstances": 1},
        "metered": False,
        "rateLimit": d.rate_limit,  # Trident's own: requests per minute to this endpoint, or null
        "createdAt": iso(d.created_at),
        "updatedAt": iso(d.updated_at),
    }
    if d.status_message:
        item["statusMessage"] = d.status_message
    if d.deployed_at:
        item["deployedAt"] = iso(d.deployed_at)
    return item


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _own(services: ServicesDep, caller: Principal, owner: str, deployment: str) -> Deployment:
    """The caller's deployment, or 404 (another user's is indistinguishable from none)."""
    found = None
    if caller.user == owner:
        found = await anyio.to_thread.run_sync(services.deployments.get, owner, deployment)
    if found is None:
        raise DeploymentNotFound(f"no deployment {owner}/{deployment}")
    return found


async def _managed(
    owner: str, deployment: str, caller: DeploymentsCallerDep, services: ServicesDep
) -> Deployment:
    return await _own(services, caller, owner, deployment)


ManagedDep = Annotated[Deployment, Depends(_managed)]


def _owner_only(owner: str, caller: Principal) -> None:
    if caller.user != owner:
        raise DeploymentNotFound(f"no deployments of {owner}")


@router.get("/api/deployments/{owner}", summary="List deployments")
async def list_deployments(
    owner: str,
    request: Request,
    caller: DeploymentsCallerDep,
    services: ServicesDep,
    settings: SettingsDep,
    status: str | None = None,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    _owner_only(owner, caller)
    found = await anyio.to_thread.run_sync(services.deployments.of_owner, owner, status, 1000)
    if model:
        found = [d for d in found if f"{d.project}/{d.model}" == model]
    items = [_item(d, _base_url(request)) for d in found[:limit]]
    return json_response({"deployments": items, "total": len(found), "region": settings.region})


@router.get("/api/deployments/{owner}/{deployment}", summary="Get deployment details")
async def retrieve_deployment(deployment: ManagedDep, request: Request, settings: SettingsDep) -> Response:
    item = _item(deployment, _base_url(request)) | {"metadata": deployment.metadata}
    return json_response({"deployment": item, "region": settings.region})


# --- lifecycle


class NewDeployment(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the SDK also sends region, memoryGi

    project: str
    model: str
    deployment: str
    name: str = Field(max_length=128)
    region: str = Field("", max_length=32)
    cpu: int | None = Field(None, ge=1, le=8)
    memoryGi: int | None = Field(None, ge=1, le=64)


def _slug(owner: str, project: str, model: str) -> Slug:
    try:
        return Slug.from_parts(owner, project, model)
    except InvalidSlugError as exc:
        raise InvalidRequest(str(exc)) from None


def _actor(request: Request, caller: Principal) -> Actor:
    return Actor.key(caller.key_id, client_ip(request))


def _source(services: ServicesDep, caller: Principal, slug: Slug, version: str | None = None) -> Source:
    source = services.deployer.source(slug, version)
    if not may_see(source.spec, caller):
        raise ModelNotFound(f"no exported model {slug}")
    return source


@router.post("/api/deployments/{owner}", summary="Deploy a model")
async def create_deployment(
    owner: str,
    body: NewDeployment,
    request: Request,
    caller: DeploymentsCallerDep,
    services: ServicesDep,
    settings: SettingsDep,
) -> Response:
    """Answers `creating` at once; the model loads and warms in the background (retrieve says
    `ready`, or `failed` with the reason)."""
    _owner_only(owner, caller)
    _slug(owner, body.deployment, "x")  # the deployment name follows the slug rules
    slug = _slug(owner, body.project, body.model)
    source = await anyio.to_thread.run_sync(_source, services, caller, slug)
    actor = _actor(request, caller)
    try:
        created = await anyio.to_thread.run_sync(
            lambda: services.deployments.create(
                Change(actor, caller.key_id, "create", f"{slug}@{source.version}"),
                owner=owner,
                name=body.deployment,
                display_name=body.name,
                project=body.project,
                model=body.model,
                version=source.version,
                triton_name="",
                status="creating",
                instances=body.cpu or 1,
                memory_gi=body.memoryGi or 2,
                region=body.region or settings.region,
            )
        )
    except DeploymentExists:
        raise Conflict(f"you already have a deployment named {body.deployment!r}") from None
    services.lifecycle.journal(created, "INFO", "create", model=str(slug), version=source.version)
    services.deployer.spawn(
        _quiet(services.lifecycle.deploy(created.id, source, "deploy", actor, caller.key_id))
    )
    return json_response(
        {
            "id": created.id,
            "deployment": created.name,
            "status": "creating",
            "message": f"loading {slug} version {source.version}",
            "region": created.region,
        }
    )


async def _quiet(work: Any) -> None:
    """A background step's failure is already in the deployment's status and logs."""
    with contextlib.suppress(ServingError):
        await work


class Update(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action: Literal["start", "stop", "replace", "rollback", "resize"] | None = None
    project: str | None = None
    model: str | None = None
    version: str | None = None
    name: str | None = Field(None, max_length=128)
    metadata: dict[str, Any] | None = None
    cpu: int | None = Field(None, ge=1, le=8)
    rateLimit: int | None = Field(None, ge=1)  # JSON's name; an explicit null removes it


@router.patch("/api/deployments/{owner}/{deployment}", summary="Update a deployment")
async def update_deployment(
    deployment: ManagedDep,
    request: Request,
    caller: DeploymentsCallerDep,
    services: ServicesDep,
    body: Annotated[Update, Body()],
) -> Response:
    """`start`, `stop`, `replace` (another model or version, or the newest export of the same),
    `rollback` (the model served before the last replace), `{name}`, `{metadata}` or
    `{rateLimit}` (requests per minute to the endpoint, whoever calls; null: none). Start,
    replace and rollback answer once the new model serves, or with 422 and why it did not (the
    deployment then keeps serving what it did); an action its status does not allow answers 409
    (`frontend.deployments.lifecycle.ACTIONS`)."""
    store, actor = services.deployments, _actor(request, caller)
    if body.action is None:
        values: dict[str, Any] = {}
        if body.name is not None:
            values["display_name"] = body.name
        if body.metadata is not None:
            values["metadata"] = body.metadata
        if "rateLimit" in body.model_fields_set:
            values["rate_limit"] = body.rateLimit
        change = Change(actor, caller.key_id, "update", ", ".join(values))
        await anyio.to_thread.run_sync(lambda: store.update(deployment.id, change, **values))
        return _updated(deployment.status, "updated")
    if body.action == "stop":
        if not await services.lifecycle.stop(deployment.id, actor, caller.key_id):
            return _updated("stopped", "already stopped")
        return _updated("stopped", "stopped: requests answer 503 until it is started")
    if body.action == "resize":
        raise InvalidRequest("resize is not supported: set the instance count with cpu= at create")
    if body.action == "start":
        if deployment.status == "ready":
            return _updated("ready", "already running")
        source = await anyio.to_thread.run_sync(
            services.deployer.source,
            Slug(deployment.owner, deployment.project, deployment.model),
            deployment.version,
        )
    else:
        project, model, version = body.project, body.model, body.version
        if body.action == "rollback":
            if not deployment.previous:
                raise InvalidRequest("nothing to roll back to: the deployment was never replaced")
            path, version = deployment.previous.split("@")
            project, model = path.split("/")
        slug = _slug(deployment.owner, project or deployment.project, model or deployment.model)
        source = await anyio.to_thread.run_sync(_source, services, caller, slug, version)
    await services.lifecycle.deploy(deployment.id, source, body.action, actor, caller.key_id)
    return _updated("ready", f"serving {source.slug} version {source.version}")


def _updated(status: str, message: str) -> Response:
    return json_response({"success": True, "status": status, "message": message})


@router.delete("/api/deployments/{owner}/{deployment}", summary="Delete a deployment")
async def delete_deployment(
    deployment: ManagedDep, request: Request, caller: DeploymentsCallerDep, services: ServicesDep
) -> Response:
    await services.lifecycle.delete(deployment, _actor(request, caller), caller.key_id)
    return json_response({"success": True})


# --- health, metrics, logs


@router.get("/api/deployments/{owner}/{deployment}/health", summary="Check deployment health")
async def deployment_health(deployment: ManagedDep, services: ServicesDep) -> Response:
    """Pings and warms: one inference on a blank image through the deployment's model."""
    if deployment.status != "ready":
        return json_response(
            {
                "healthy": False,
                "status": 503,
                "latencyMs": 0,
                "error": f"the deployment is {deployment.status}",
            }
        )
    deployer = services.deployer
    try:
        latency = await deployer.probe(await deployer.served(deployer.route(deployment), deployment))
    except ServingError as exc:
        return json_response(
            {"healthy": False, "status": exc.status_code, "latencyMs": 0, "error": exc.detail}
        )
    return json_response({"healthy": True, "status": 200, "latencyMs": latency})


@router.get("/api/deployments/{owner}/{deployment}/metrics", summary="Get deployment metrics")
async def deployment_metrics(
    deployment: ManagedDep,
    services: ServicesDep,
    settings: SettingsDep,
    range_: Annotated[Literal["1h", "6h", "24h", "7d", "30d"], Query(alias="range")] = "24h",
    sparkline: Literal["true", "false"] = "false",
    view: Literal["overview"] | None = None,
) -> Response:
    """From the per-minute aggregates (this process's pending counts are written first; other
    workers' join within `DEPLOYMENT_FLUSH_S`)."""
    await anyio.to_thread.run_sync(services.telemetry.flush)
    now = services.keys.clock()
    if sparkline == "true":
        day = await anyio.to_thread.run_sync(services.telemetry.summary, deployment.id, "24h", now)
        per_hour = [
            sum(p["value"] for p in day["timeSeries"]["requests"][i : i + 4]) for i in range(0, 96, 4)
        ]
        s = day["summary"]
        return json_response(
            {
                "requests24h": per_hour,
                "totalRequests": s["totalRequests"],
                "errorRate": s["errorRate"],
                "avgLatencyMs": s["avgLatencyMs"],
            }
        )
    assert range_ in RANGES
    body = await anyio.to_thread.run_sync(services.telemetry.summary, deployment.id, range_, now)
    body["region"] = settings.region
    if view == "overview":
        s, series = body["summary"], body["timeSeries"]
        body["summary"] = {k: s[k] for k in ("totalRequests", "errorRate", "p95LatencyMs")}
        body["timeSeries"] = {k: series[k] for k in ("requests", "errors", "latencyP95")}
    return json_response(body)


@router.get("/api/deployments/{owner}/{deployment}/logs", summary="Get deployment logs")
async def deployment_logs(
    deployment: ManagedDep,
    services: ServicesDep,
    severity: str = "",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    """The newest lines first; `severity` is a comma-separated list of levels to keep."""
    wanted = [s.strip().upper() for s in severity.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SEVERITIES))
    if unknown:
        raise InvalidRequest(f"unknown severity {unknown[0]!r}; levels: {', '.join(SEVERITIES)}")
    await anyio.to_thread.run_sync(services.telemetry.flush)
    lines = await anyio.to_thread.run_sync(services.telemetry.lines, deployment.id, wanted, limit)
    entries = []
    for line in lines:
        entry: dict[str, Any] = {
            "timestamp": iso(line.at),
            "severity": line.severity,
            "message": line.message,
        }
        if line.method:
            entry["httpRequest"] = {
                "method": line.method,
                "url": line.url or "",
                "status": line.status or 0,
                "latencyMs": line.latency_ms or 0.0,
            }
        entries.append(entry)
    return json_response({"entries": entries})


# --- predict


async def _endpoint_limit(services: ServicesDep, deployment: Deployment, per_minute: int) -> None:
    """The deployment's own limit, over all its callers (beside each caller's plan)."""
    decision = await services.limiter.check(
        f"deployment:{deployment.id}", Plan(per_minute, per_minute * 1440)
    )
    if not decision.allowed:
        raise RateLimited(
            f"the deployment allows {per_minute} requests per minute; retry in {decision.retry_after_s} s",
            retry_after=decision.retry_after_s,
        )


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


@contextlib.asynccontextmanager
async def _observed(
    request: Request, services: ServicesDep, deployment: Deployment, request_id: str
) -> AsyncIterator[dict[str, Any]]:
    """Counts and logs the request whatever it answers (the handler fills `outcome`)."""
    start, at = time.perf_counter(), services.keys.clock()
    outcome: dict[str, Any] = {"status": 500}
    try:
        yield outcome
    except ServingError as exc:
        outcome["status"] = exc.status_code
        outcome["error"] = exc.detail
        raise
    finally:
        _record(services, deployment, request, request_id, at, start, outcome)


def _record(
    services: ServicesDep,
    deployment: Deployment,
    request: Request,
    request_id: str,
    at: datetime,
    start: float,
    outcome: dict[str, Any],
) -> None:
    latency = round((time.perf_counter() - start) * 1000, 2)
    status = int(outcome["status"])
    severity = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
    line = {
        "requestId": request_id,
        "deployment": f"{deployment.owner}/{deployment.name}",
        "status": status,
        "latencyMs": latency,
        **{k: v for k, v in outcome.items() if k in ("model", "version", "error")},
    }
    message = json.dumps(line)
    log.info(process_log_line(at, severity, **line))
    services.telemetry.request(deployment.id, at, status, latency)
    services.telemetry.log(
        LogLine(deployment.id, at, severity, message, request.method, request.url.path, status, latency)
    )
    record_deployment(f"{deployment.owner}/{deployment.name}", status, latency / 1000)


@router.post(
    DEPLOYMENT_PREDICT.path,
    summary="Run deployment inference",
)
async def predict_deployment(
    owner: str,
    deployment: str,
    request: Request,
    caller: PredictCallerDep,
    quota: QuotaDep,
    services: ServicesDep,
    settings: SettingsDep,
) -> Response:
    """The model predict call, answered by the deployment's own model (Platform format)."""
    call_start = time.perf_counter()
    found = await _own(services, caller, owner, deployment)
    request_id = _request_id(request)
    deployer: Deployer = services.deployer
    try:
        async with _observed(request, services, found, request_id) as outcome:
            if found.status != "ready":
                retry = DEPLOYING_RETRY_S if found.status in ("creating", "deploying") else STOPPED_RETRY_S
                raise ServiceUnavailable(f"the deployment is {found.status}", retry_after=retry)
            if found.rate_limit:
                await _endpoint_limit(services, found, found.rate_limit)
            form = await read_predict_form(
                request, settings.max_upload_bytes, settings.max_video_bytes, "platform"
            )
            for attempt in range(2):
                name = deployer.route(found)
                if not name:
                    raise ServiceUnavailable("the deployment is stopped", retry_after=STOPPED_RETRY_S)
                deployer.in_flight[name] += 1  # before any await: the switch drains what it counts
                try:
                    served = await deployer.served(name, found)
                    outcome["model"], outcome["version"] = str(served.slug), served.version
                    request.state.model, request.state.task = str(served.slug), served.spec.task
                    response = await predict_form(
                        request,
                        services.engine,
                        settings,
                        served,
                        form,
                        PLATFORM,
                        call_start,
                        services.track_sessions,
                        caller,
                    )
                    break
                except ServiceUnavailable:
                    # another process switched the deployment and unloaded this model meanwhile:
                    # once more on the model the database names now
                    fresh = await anyio.to_thread.run_sync(services.deployments.get, owner, deployment)
                    if attempt or form.video is not None or fresh is None or fresh.triton_name == name:
                        raise
                    found = fresh
                finally:
                    deployer.in_flight[name] -= 1
            outcome["status"] = response.status_code
    except ServingError as exc:
        exc.headers.update(quota.headers())
        exc.headers["X-Request-ID"] = request_id
        raise
    response.headers.update(quota.headers())
    response.headers["X-Request-ID"] = request_id
    return response
