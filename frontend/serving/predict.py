"""One predict call's form through a served model: its video, or its image in an in-flight slot.

Shared by the model predict and the deployment predict routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core.settings import Settings
from frontend.serving.catalog import ServedModel
from frontend.serving.engine import Engine
from frontend.serving.form import PredictForm
from frontend.serving.image import predict_image
from frontend.serving.video import VideoCall, predict_video
from pipeline.decode import decoder_for
from pipeline.formats import Format


async def predict_form(
    request: Request,
    engine: Engine,
    settings: Settings,
    served: ServedModel,
    form: PredictForm,
    contract: Format,
    started: float,
) -> Response:
    """The answer in `contract`; `started` is the call's `time.perf_counter()` (the Platform's
    `functionTimeCall` counts from it)."""
    decode = decoder_for(served.spec)
    call = engine.call(served, started)
    if form.video is not None:
        video = VideoCall(engine, served, decode, form.options, contract, call)
        return await predict_video(request, video, settings, form.video)
    with engine.in_flight.slot():
        return await predict_image(request, engine, settings, served, decode, form, contract, call)
