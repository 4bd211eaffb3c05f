"""One predict call's form through a served model: its video, or its image in an in-flight slot.

Shared by the model predict and the deployment predict routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core.settings import Settings
from frontend.errors import InvalidRequest
from frontend.serving.catalog import ServedModel
from frontend.serving.engine import Engine
from frontend.serving.form import PredictForm
from frontend.serving.image import predict_image
from frontend.serving.video import VideoCall, predict_video
from pipeline.contract import TRACKABLE
from pipeline.decode import decoder_for
from pipeline.formats import Format
from pipeline.tracking import VideoTracking


def track_refusal(task: str, video: bool) -> str | None:
    """Why `track` cannot be asked of this model and input, or None: it needs boxes to follow and
    frames to follow them through.

    A single image is refused rather than tracked alone: `model.track()` would number its boxes
    1, 2, 3... and the next image would start again, ids that look like tracking but follow
    nothing. Sessions, which carry a tracker from one request to the next, are another step."""
    if task not in TRACKABLE:
        return f"track needs a model that finds boxes (detect, segment, pose or obb); this one is {task}"
    if not video:
        return "track needs a video: a single image has no frames to follow its objects through"
    return None


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
    refusal = track_refusal(served.spec.task, form.video is not None) if form.options.track else None
    if refusal is not None:
        if form.video is not None:
            form.video.file.close()  # `predict_video` closes it on every other path
        raise InvalidRequest(refusal)
    if form.video is not None:
        tracking = VideoTracking(form.options) if form.options.track else None
        video = VideoCall(engine, served, decode, form.options, contract, call, tracking)
        return await predict_video(request, video, settings, form.video)
    with engine.in_flight.slot():
        return await predict_image(request, engine, settings, served, decode, form, contract, call)
