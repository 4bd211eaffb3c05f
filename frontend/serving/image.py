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
from frontend.metrics import record_tracked
from frontend.serving.catalog import ServedModel
from frontend.serving.form import PredictForm
from frontend.serving.imaging import decode_image
from frontend.serving.inference import ModelCall, Track, decode_and_render, run_cpu, run_model
from frontend.serving.source import read_source
from pipeline.prepare import Prepared, prepare
from pipeline.result import Result, Speed
from pipeline.tracking import VideoTracking, Warp


def _decode_and_prepare(
    data: bytes, max_pixels: int, served: ServedModel, imgsz: int, tracking: VideoTracking | None
) -> tuple[Prepared, Warp | None]:
    """Upload bytes -> model input (and, for a track session, the camera's motion onto the frame),
    in one trip to the pool (each trip is a thread wake-up)."""
    image = decode_image(data, max_pixels)
    warp = None if tracking is None else tracking.camera_motion(image)
    return prepare(image, served.spec, imgsz, served.u8_input), warp


def _tracked(tracking: VideoTracking, model: str, warp: Warp | None) -> Track:
    def track(result: Result) -> Result:
        start = time.perf_counter()
        shown = tracking.step(result, warp)
        record_tracked(model, tracking.name, time.perf_counter() - start)
        return shown

    return track


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


async def predict_image(
    request: Request, model: ModelCall, settings: Settings, form: PredictForm
) -> Response:
    """One image through the pipeline, answered in the call's contract, with Server-Timing; with
    a tracker (a track session's frame) its result goes through it before it is rendered."""
    engine, served, options, tracking = model.engine, model.served, model.options, model.tracking
    start = time.perf_counter()
    data = form.data if form.data is not None else await read_source(form.source or "", settings)
    prep, warp = await run_cpu(
        engine, _decode_and_prepare, data, settings.max_image_pixels, served, options.imgsz, tracking
    )
    pre_ms = _ms(start)

    start = time.perf_counter()
    try:
        outputs = await run_model(engine, served, prep, options)
    except ServiceUnavailable:
        engine.catalog.mark_stale()  # an unknown slug now rereads the index instead of answering 404
        raise
    infer_ms = _ms(start)

    start = time.perf_counter()
    track = None if tracking is None else _tracked(tracking, str(served.slug), warp)
    result, rows, maps = await run_cpu(
        engine, decode_and_render, model.decode, outputs, served, options, prep, model.contract, track
    )
    speed = Speed(pre_ms, infer_ms, _ms(start))
    request.state.timings = speed.as_dict()  # for metrics
    response = json_response(model.contract.image(rows, result, speed, maps, model.call))
    response.headers["Server-Timing"] = ", ".join(
        f"{stage};dur={ms}" for stage, ms in speed.as_dict().items()
    )
    return response
