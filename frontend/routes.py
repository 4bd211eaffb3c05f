"""HTTP routes: the Platform's predict endpoint, the model list, and health."""

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

from frontend.auth import authenticate, ensure_visible
from frontend.catalog import Catalog, ServedModel
from frontend.errors import ModelNotFound, RateLimited, ServiceUnavailable, ServingError
from frontend.form import read_predict_form
from frontend.imaging import decode_image
from frontend.inference import Decoder, Params, Prepared, decoder_for, prepare
from frontend.metrics import record_rate_limited
from frontend.ratelimit import DAY_S, Plan
from frontend.schemas import PREDICT_BODY, ErrorResponse, PredictResponse
from frontend.triton import Triton
from trident.keys import Principal
from trident.modelspec import CANDIDATES_OUTPUT, CONF_INPUT, U8_INPUT, ModelSpec
from trident.settings import Settings
from trident.slug import InvalidSlugError, Slug

T = TypeVar("T")
router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429, 500, 503, 504)
}


def json_response(body: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


async def run_cpu(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """CPU-bound work off the event loop, on a bounded pool."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=request.app.state.cpu_limiter)


def _decode_and_prepare(data: bytes, max_pixels: int, served: ServedModel, imgsz: int) -> Prepared:
    """Upload bytes -> model input, in one trip to the pool (each trip is a thread wake-up)."""
    return prepare(decode_image(data, max_pixels), served.spec, imgsz, served.u8_input)


def _decode_to_json(
    decode: Decoder, outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> orjson.Fragment:
    """Predictions already serialised, off the event loop (often the largest part of the body)."""
    return orjson.Fragment(orjson.dumps(decode(outputs, spec, params, prep)))


async def _run_model(
    triton: Triton, served: ServedModel, prep: Prepared, params: Params
) -> dict[str, NDArray[Any]]:
    """Triton's outputs by name; with `candidates`, `output0` holds only the anchors that can pass
    `conf` (what `raw_candidates` then keeps from it is exactly what it keeps from the full head)."""
    inputs: dict[str, NDArray[Any]] = {U8_INPUT if served.u8_input else served.input_name: prep.tensor}
    if not served.candidates:
        return await triton.infer(served.triton_name, inputs, list(served.output_names))
    inputs[CONF_INPUT] = np.full((1, 1), params.conf, dtype=np.float32)
    wanted = [CANDIDATES_OUTPUT if name == "output0" else name for name in served.output_names]
    outputs = await triton.infer(served.triton_name, inputs, wanted)
    outputs["output0"] = outputs.pop(CANDIDATES_OUTPUT)
    return outputs


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


@router.post(
    "/api/models/{owner}/{project}/{model}/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra=PREDICT_BODY,
    summary="Run a model on one image",
)
async def predict(owner: str, project: str, model: str, request: Request) -> Response:
    """The Ultralytics Platform predict call: multipart `file` plus `conf`, `iou`, `imgsz`.

    Order matters: the key first (a failed auth spends no quota and learns nothing about models),
    then the quota, then the model (one the key may not see is "not found"), then the body.
    """
    state = request.app.state
    principal = await authenticate(request, state.keys, state.auth_failures)
    request.state.plan = principal.plan  # for metrics
    plan = state.settings.plans.get(principal.plan)
    if plan is None:
        raise ServingError(f"the plan {principal.plan!r} of this key is not configured")
    decision = await state.limiter.check(principal.key_id, Plan(*plan))
    limit_headers = decision.headers()
    try:
        if not decision.allowed:
            record_rate_limited(principal.plan, "quota" if decision.window_s == DAY_S else "rate")
            raise RateLimited(
                f"the {principal.plan} plan allows {plan[0]} requests per minute and {plan[1]} per day; "
                f"retry in {decision.retry_after_s} s",
                retry_after=decision.retry_after_s,
            )
        response = await _predict(request, principal, owner, project, model)
    except ServingError as exc:
        exc.headers.update(limit_headers)
        raise
    response.headers.update(limit_headers)
    return response


async def _predict(request: Request, principal: Principal, owner: str, project: str, model: str) -> Response:
    settings: Settings = request.app.state.settings
    catalog: Catalog = request.app.state.catalog
    try:
        slug = Slug.from_parts(owner, project, model)
    except InvalidSlugError:
        raise ModelNotFound(f"no model {owner}/{project}/{model}") from None
    served = await catalog.get(slug)
    ensure_visible(served.spec, principal, str(slug))
    request.state.model, request.state.task = str(slug), served.spec.task  # for metrics
    decode = decoder_for(served)
    data, params = await read_predict_form(request, settings.max_upload_bytes)
    with request.app.state.in_flight.slot():
        return await _infer(request, served, decode, data, params)


async def _infer(
    request: Request, served: ServedModel, decode: Decoder, data: bytes, params: Params
) -> Response:
    settings: Settings = request.app.state.settings
    catalog: Catalog = request.app.state.catalog
    triton: Triton = request.app.state.triton
    start = time.perf_counter()
    prep = await run_cpu(request, _decode_and_prepare, data, settings.max_image_pixels, served, params.imgsz)
    pre_ms = _ms(start)

    start = time.perf_counter()
    try:
        outputs = await _run_model(triton, served, prep, params)
    except ServiceUnavailable:
        catalog.mark_stale()  # an unknown slug now rereads the index instead of answering 404
        raise
    infer_ms = _ms(start)

    start = time.perf_counter()
    predictions = await run_cpu(request, _decode_to_json, decode, outputs, served.spec, params, prep)
    post_ms = _ms(start)
    h0, w0 = prep.orig_hw
    speed = {"preprocess": pre_ms, "inference": infer_ms, "postprocess": post_ms}
    request.state.timings = speed  # for metrics
    body = {"success": True, "predictions": predictions, "image": {"width": w0, "height": h0}, "speed": speed}
    response = json_response(body)
    response.headers["Server-Timing"] = ", ".join(f"{stage};dur={ms}" for stage, ms in speed.items())
    return response


@router.get(
    "/api/models",
    summary="Models this key can run",
    responses={code: {"model": ErrorResponse} for code in (401, 429, 503)},
)
async def list_models(request: Request) -> Response:
    state = request.app.state
    principal = await authenticate(request, state.keys, state.auth_failures)
    catalog: Catalog = request.app.state.catalog
    visible = [m for m in catalog.models if m.spec.visibility == "public" or m.spec.owner == principal.user]
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


@router.get("/readyz", summary="Triton is reachable and ready", responses={503: {"model": ErrorResponse}})
async def readyz(request: Request) -> Response:
    triton: Triton = request.app.state.triton
    if await triton.is_ready():
        return json_response({"status": "ready", "models": len(request.app.state.catalog.models)})
    raise ServiceUnavailable("the inference server is not ready")
