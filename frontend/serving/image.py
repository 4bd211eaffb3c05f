"""Predict on one image: upload -> decode and letterbox -> Triton -> `Result` -> a rendering.

Shared by the model predict and the deployment predict routes; the video path is `video.py`.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from core.settings import Settings
from frontend.errors import ServiceUnavailable
from frontend.formats import json_response
from frontend.serving.catalog import ServedModel
from frontend.serving.engine import Engine
from frontend.serving.form import PredictForm
from frontend.serving.imaging import decode_image
from frontend.serving.inference import decode_and_render, run_cpu, run_model
from frontend.serving.source import read_source
from pipeline.decode import Decoder
from pipeline.formats import Call, Format
from pipeline.prepare import Prepared, prepare
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
    contract: Format,
    call: Call,
) -> Response:
    """One image through the pipeline, answered in `contract`, with Server-Timing."""
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
        engine, decode_and_render, decode, outputs, served, options, prep, contract
    )
    speed = Speed(pre_ms, infer_ms, _ms(start))
    request.state.timings = speed.as_dict()  # for metrics
    response = json_response(contract.image(rows, result, speed, maps, call))
    response.headers["Server-Timing"] = ", ".join(
        f"{stage};dur={ms}" for stage, ms in speed.as_dict().items()
    )
    return response
