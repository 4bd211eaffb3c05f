"""HTTP routes: predict (both contracts), the model lists, and health.

Handlers only wire dependencies (caller, quota, model, contract) to the pipeline and pick a
rendering; everything between the image and the `Result` is `pipeline/`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import numpy as np
import orjson
from fastapi import APIRouter
from numpy.typing import NDArray
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
from frontend.schemas import ERRORS, PREDICT_BODY, PREDICT_RESPONSES
from frontend.source import read_source
from pipeline.contract import ApiFormat, PredictOptions
from pipeline.decode import Decoder, decoder_for
from pipeline.prepare import Prepared, prepare
from pipeline.render_maps import map_objects
from pipeline.render_platform import ModelInfo, platform_body, platform_image, platform_results
from pipeline.render_seed import seed_body, seed_predictions
from pipeline.result import Result, Speed
from trident import __version__
from trident.modelspec import CANDIDATES_OUTPUT, CONF_INPUT, U8_INPUT
from trident.settings import Settings

T = TypeVar("T")
router = APIRouter()


def json_response(body: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


async def run_cpu(services: Services, fn: Callable[..., T], *args: Any) -> T:
    """CPU-bound work off the event loop, on a bounded pool."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=services.cpu_limiter)


def _decode_and_prepare(data: bytes, max_pixels: int, served: ServedModel, imgsz: int) -> Prepared:
    """Upload bytes -> model input, in one trip to the pool (each trip is a thread wake-up)."""
    return prepare(decode_image(data, max_pixels), served.spec, imgsz, served.u8_input)


def _decode_and_render(
    decode: Decoder,
    outputs: dict[str, NDArray[Any]],
    served: ServedModel,
    options: PredictOptions,
    prep: Prepared,
    api_format: ApiFormat,
) -> tuple[Result, orjson.Fragment, dict[str, object]]:
    """The result, its predictions and its map (semantic, depth: a PNG) already serialised, off
    the event loop (often the largest part of the body)."""
    result = decode(outputs, served.spec, options, prep)
    rows = (
        platform_results(result, options) if api_format == "platform" else seed_predictions(result, options)
    )
    maps: dict[str, object] = {
        key: orjson.Fragment(orjson.dumps(value)) for key, value in map_objects(result, options.bits).items()
    }
    return result, orjson.Fragment(orjson.dumps(rows)), maps


async def _run_model(
    services: Services, served: ServedModel, prep: Prepared, options: PredictOptions
) -> dict[str, NDArray[Any]]:
    """Triton's outputs by name; with `candidates`, `output0` holds only the anchors that can pass
    `conf` (what `raw_candidates` then keeps from it is exactly what it keeps from the full head)."""
    triton = services.triton
    inputs: dict[str, NDArray[Any]] = {U8_INPUT if served.u8_input else served.input_name: prep.tensor}
    if not served.candidates:
        return await triton.infer(served.triton_name, inputs, list(served.output_names))
    inputs[CONF_INPUT] = np.full((1, 1), options.conf, dtype=np.float32)
    wanted = [CANDIDATES_OUTPUT if name == "output0" else name for name in served.output_names]
    outputs = await triton.infer(served.triton_name, inputs, wanted)
    outputs["output0"] = outputs.pop(CANDIDATES_OUTPUT)
    return outputs


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


@router.post(
    "/api/models/{owner}/{project}/{model}/predict",
    responses=PREDICT_RESPONSES,
    openapi_extra=PREDICT_BODY,
    summary="Run a model on one image",
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
        form = await read_predict_form(request, settings.max_upload_bytes)
        with services.in_flight.slot():
            response = await _infer(request, services, settings, served, decode, form, api_format, call_start)
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
        outputs = await _run_model(services, served, prep, options)
    except ServiceUnavailable:
        services.catalog.mark_stale()  # an unknown slug now rereads the index instead of answering 404
        raise
    infer_ms = _ms(start)

    start = time.perf_counter()
    result, rows, maps = await run_cpu(
        services, _decode_and_render, decode, outputs, served, options, prep, api_format
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
    responses={code: ERRORS[code] for code in (401, 429, 503)},
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
