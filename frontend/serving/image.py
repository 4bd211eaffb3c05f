"""Predict on one image: upload -> decode and letterbox -> Triton -> `Result` -> a rendering.

Shared by the model predict and the deployment predict routes; the video path is `video.py`.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from core import __version__
from core.settings import Settings
from frontend.errors import ServiceUnavailable
from frontend.formats import json_response
from frontend.serving.catalog import ServedModel
from frontend.serving.engine import Engine
from frontend.serving.form import PredictForm
from frontend.serving.imaging import decode_image
from frontend.serving.inference import decode_and_render, run_cpu, run_model
from frontend.serving.source import read_source
from pipeline.contract import ApiFormat
from pipeline.decode import Decoder
from pipeline.prepare import Prepared, prepare
from pipeline.render_platform import ModelInfo, platform_body, platform_image
from pipeline.render_seed import seed_body
from pipeline.result import Speed


def _decode_and_prepare(data: bytes, max_pixels: int, served: ServedModel, imgsz: int) -> Prepared:
    """Upload bytes -> model input, in one trip to the pool (each trip is a thread wake-up)."""
    return prepare(decode_image(data, max_pixels), served.spec, imgsz, served.u8_input)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


async def predict_image(
    request: Request,
    engine: Engine,
    settings: Settings,
    served: ServedModel,
    decode: Decoder,
    form: PredictForm,
    api_format: ApiFormat,
    call_start: float,
) -> Response:
    """One image through the pipeline, answered in `api_format`, with Server-Timing."""
    options = form.options
    start = time.perf_counter()
    data = form.data if form.data is not None else await read_source(form.source or "", settings)
    prep = await run_cpu(engine, _decode_and_prepare, data, settings.max_image_pixels, served, options.imgsz)
    pre_ms = _ms(start)

    start = time.perf_counter()
    try:
        outputs = await run_model(engine, served, prep, options)
    except ServiceUnavailable:
        engine.catalog.mark_stale()  # an unknown slug now rereads the index instead of answering 404
        raise
    infer_ms = _ms(start)

    start = time.perf_counter()
    result, rows, maps = await run_cpu(
        engine, decode_and_render, decode, outputs, served, options, prep, api_format
    )
    speed = Speed(pre_ms, infer_ms, _ms(start))
    request.state.timings = speed.as_dict()  # for metrics
    if api_format == "platform":
        image = platform_image(rows, result, speed, maps)
        alive_s, call_s = time.monotonic() - engine.started, time.perf_counter() - call_start
        body = platform_body([image], model_info(served), alive_s, call_s)
    else:
        body = seed_body(rows, result, speed, maps)
    response = json_response(body)
    response.headers["Server-Timing"] = ", ".join(
        f"{stage};dur={ms}" for stage, ms in speed.as_dict().items()
    )
    return response


def model_info(served: ServedModel) -> ModelInfo:
    """What the Platform's answer says about the model that ran."""
    version = {"trident": __version__, "model": served.version}
    if ultralytics := served.spec.provenance.get("ultralytics_version"):
        version["ultralytics"] = ultralytics
    return ModelInfo(str(served.slug), served.spec.task, served.spec.names, version)
