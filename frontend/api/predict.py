"""HTTP routes: predict (both contracts), the model lists, and health.

Handlers only wire dependencies (caller, quota, model, contract) to the pipeline and pick a
rendering; everything between the image and the `Result` is `pipeline/`.
"""

from __future__ import annotations

import asyncio
import time

import anyio.to_thread
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from frontend.deps import (
    ApiFormatDep,
    CatalogDep,
    PredictCallerDep,
    QuotaDep,
    Services,
    ServicesDep,
    SettingsDep,
)
from frontend.errors import ModelNotFound, ServiceUnavailable, ServingError
from frontend.formats import json_response
from frontend.guards.auth import may_see, visible_model
from frontend.routes import MODEL_PREDICT
from frontend.schemas import ERRORS, PREDICT_BODY, PREDICT_RESPONSES
from frontend.serving.catalog import ServedModel
from frontend.serving.form import read_predict_form
from frontend.serving.predict import predict_form
from store.keys import Principal

router = APIRouter()


@router.post(
    MODEL_PREDICT.path,
    responses=PREDICT_RESPONSES,
    openapi_extra=PREDICT_BODY,
    summary="Run a model on one image or video",
)
async def predict(
    owner: str,
    project: str,
    model: str,
    request: Request,
    contract: ApiFormatDep,
    caller: PredictCallerDep,
    quota: QuotaDep,
    services: ServicesDep,
    settings: SettingsDep,
) -> Response:
    """The Ultralytics Platform predict call: multipart `file` (or `source`) plus the options.

    Order matters: the key first (a failed auth spends no quota and learns nothing about models),
    then the quota, then the model (one the key may not see is "not found"), then the body.
    The answer is in the reference page's format (`seed`) or the Platform's (`platform`).
    """
    started = time.perf_counter()
    try:
        served = await _served_or_exporting(
            services, caller, owner, project, model, settings.upload_predict_wait_s
        )
        request.state.model, request.state.task = str(served.slug), served.spec.task  # for metrics
        if not caller.anonymous:  # for `GET /api/usage`, counted in memory
            services.usage.record(caller.user, str(served.slug), services.keys.clock())
        form = await read_predict_form(
            request, settings.max_upload_bytes, settings.max_video_bytes, contract.name
        )
        response = await predict_form(
            request,
            services.engine,
            settings,
            served,
            form,
            contract,
            started,
            services.track_sessions,
            caller,
        )
    except ServingError as exc:
        exc.headers.update(quota.headers())
        raise
    response.headers.update(quota.headers())
    return response


async def _served_or_exporting(
    services: Services, caller: Principal, owner: str, project: str, model: str, wait_s: float
) -> ServedModel:
    """The model; one of the caller's uploads still exporting is waited for, up to `wait_s`
    (`ul cloud predict model=best.pt` predicts as soon as its upload is complete)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await visible_model(services.engine.catalog, caller, owner, project, model)
        except ModelNotFound:
            if caller.anonymous or owner != caller.user:
                raise
            found = await anyio.to_thread.run_sync(services.uploads.model, owner, project, model)
            jobs = await anyio.to_thread.run_sync(services.uploads.jobs, found.id) if found else []
            if jobs and jobs[0].status == "failed":
                raise ModelNotFound(
                    f"{owner}/{project}/{model}: its export failed: {jobs[0].error}"
                ) from None
            if not jobs or jobs[0].status == "cancelled" or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.5)


@router.get(
    "/api/models",
    summary="Models this key can run",
    responses={code: ERRORS[code] for code in (401, 403, 429, 503)},
)
async def list_models(caller: PredictCallerDep, catalog: CatalogDep) -> Response:
    visible = [m for m in catalog.models if may_see(m.spec, caller)]
    return json_response(
        {
            "success": True,
            "models": [
                {
                    "slug": str(m.slug),
                    "task": m.spec.task,
                    "classes": len(m.spec.names),
                    "imgsz": list(m.spec.imgsz),
                    "dynamic": m.spec.dynamic,
                    "version": m.version,
                }
                for m in visible
            ],
        }
    )


@router.get("/livez", summary="The process is alive")
async def livez() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", summary="Triton is reachable and ready", responses={503: ERRORS[503]})
async def readyz(services: ServicesDep) -> Response:
    if not await anyio.to_thread.run_sync(services.keys.reachable):
        raise ServiceUnavailable("the key store cannot be reached")
    if await services.engine.triton.is_ready():
        await services.engine.catalog.ensure_read()  # `GET /api/models` lists them from the start
        return json_response({"status": "ready", "models": len(services.engine.catalog.models)})
    raise ServiceUnavailable("the inference server is not ready")
