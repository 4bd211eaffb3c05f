"""HTTP routes: predict (both contracts), the model lists, and health.

Handlers only wire dependencies (caller, quota, model, contract) to the pipeline and pick a
rendering; everything between the image and the `Result` is `pipeline/`.
"""

from __future__ import annotations

import time

import anyio.to_thread
import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from frontend.auth import may_see, visible_model
from frontend.catalog import ServedModel
from frontend.deps import (
    ApiFormatDep,
    CatalogDep,
    PredictCallerDep,
    QuotaDep,
    Services,
    ServicesDep,
    SettingsDep,
)
from frontend.errors import ServiceUnavailable, ServingError
from frontend.form import PredictForm, read_predict_form
from frontend.imaging import decode_image
from frontend.inference import decode_and_render, run_cpu, run_model
from frontend.schemas import ERRORS, PREDICT_BODY, PREDICT_RESPONSES
from frontend.source import read_source
from frontend.video import VideoCall, predict_video
from pipeline.contract import ApiFormat
from pipeline.decode import Decoder, decoder_for
from pipeline.prepare import Prepared, prepare
from pipeline.render_platform import ModelInfo, platform_body, platform_image
from pipeline.render_seed import seed_body
from pipeline.result import Speed
from trident import __version__
from trident.settings import Settings

router = APIRouter()


def json_response(body: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def _decode_and_prepare(data: bytes, max_pixels: int, served: ServedModel, imgsz: int) -> Prepared:
    """Upload bytes -> model input, in one trip to the pool (each trip is a thread wake-up)."""
    return prepare(decode_image(data, max_pixels), served.spec, imgsz, served.u8_input)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


@router.post(
    "/api/models/{owner}/{project}/{model}/predict",
    responses=PREDICT_RESPONSES,
    openapi_extra=PREDICT_BODY,
    summary="Run a model on one image or video",
)
async def predict(
    owner: str,
    project: str,
    model: str,
    request: Request,
    api_format: ApiFormatDep,
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
    call_start = time.perf_counter()
    try:
        served = await visible_model(services.catalog, caller, owner, project, model)
        request.state.model, request.state.task = str(served.slug), served.spec.task  # for metrics
        if not caller.anonymous:  # for `GET /api/usage`, counted in memory
            services.usage.record(caller.user, str(served.slug), services.keys.clock())
        decode = decoder_for(served.spec)
        form = await read_predict_form(request, settings.max_upload_bytes, settings.max_video_bytes)
        if form.video is not None:
            info = _model_info(served)
            call = VideoCall(services, served, decode, form.options, api_format, info, call_start)
            response = await predict_video(request, call, settings, form.video)
        else:
            with services.in_flight.slot():
                response = await _infer(
                    request, services, settings, served, decode, form, api_format, call_start
                )
    except ServingError as exc:
        exc.headers.update(quota.headers())
        raise
    response.headers.update(quota.headers())
    return response


async def _infer(
    request: Request,
    services: Services,
    settings: Settings,
    served: ServedModel,
    decode: Decoder,
    form: PredictForm,
    api_format: ApiFormat,
    call_start: float,
) -> Response:
    options = form.options
    start = time.perf_counter()
    data = form.data if form.data is not None else await read_source(form.source or "", settings)
    prep = await run_cpu(
        services, _decode_and_prepare, data, settings.max_image_pixels, served, options.imgsz
    )
    pre_ms = _ms(start)

    start = time.perf_counter()
    try:
        outputs = await run_model(services, served, prep, options)
    except ServiceUnavailable:
        services.catalog.mark_stale()  # an unknown slug now rereads the index instead of answering 404
        raise
    infer_ms = _ms(start)

    start = time.perf_counter()
    result, rows, maps = await run_cpu(
        services, decode_and_render, decode, outputs, served, options, prep, api_format
    )
    speed = Speed(pre_ms, infer_ms, _ms(start))
    request.state.timings = speed.as_dict()  # for metrics
    if api_format == "platform":
        image = platform_image(rows, result, speed, maps)
        alive_s, call_s = time.monotonic() - services.started, time.perf_counter() - call_start
        body = platform_body([image], _model_info(served), alive_s, call_s)
    else:
        body = seed_body(rows, result, speed, maps)
    response = json_response(body)
    response.headers["Server-Timing"] = ", ".join(
        f"{stage};dur={ms}" for stage, ms in speed.as_dict().items()
    )
    return response


def _model_info(served: ServedModel) -> ModelInfo:
    version = {"trident": __version__, "model": served.version}
    if ultralytics := served.spec.provenance.get("ultralytics_version"):
        version["ultralytics"] = ultralytics
    return ModelInfo(str(served.slug), served.spec.task, served.spec.names, version)


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
    if await services.triton.is_ready():
        return json_response({"status": "ready", "models": len(services.catalog.models)})
    raise ServiceUnavailable("the inference server is not ready")
