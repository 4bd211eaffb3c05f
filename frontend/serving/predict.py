"""One predict call's form through a served model: its video, or its image in an in-flight slot,
through its track session's tracker when it names one.

Shared by the model predict and the deployment predict routes. A track session's frame holds the
session (`store.track_sessions`) from before its decode to after its tracker update, so the
session's frames are tracked one at a time in the order they arrived, and its state is saved only
when the frame succeeded (a failed frame leaves the session as it was)."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from core.settings import Settings
from frontend.errors import Conflict, Gone, InvalidRequest, ServiceUnavailable
from frontend.serving.catalog import ServedModel
from frontend.serving.engine import Engine
from frontend.serving.form import PredictForm
from frontend.serving.image import predict_image
from frontend.serving.inference import ModelCall
from frontend.serving.video import predict_video
from pipeline.contract import TRACKABLE
from pipeline.decode import decoder_for
from pipeline.formats import Format
from pipeline.tracking import VideoTracking
from store.keys import Principal
from store.track_sessions import Binding, SessionGone, SessionMismatch, StoreUnavailable, TrackSessions

ANONYMOUS_NAMESPACE = "anonymous"  # callers without a key (TRIDENT_ANONYMOUS_PLAN) share one
SESSION_HEADER = "Trident-Track-Session"
FRAME_HEADER = "Trident-Track-Frame"
EVICTED_HEADER = "Trident-Track-Session-Evicted"


def track_refusal(task: str, video: bool, session: bool = False) -> str | None:
    """Why `track` cannot be asked of this model and input, or None: it needs boxes to follow and
    frames to follow them through.

    A single image without a session is refused rather than tracked alone: `model.track()` would
    number its boxes 1, 2, 3... and the next image would start again, ids that look like tracking
    but follow nothing. A session carries the tracker from one request to the next."""
    if task not in TRACKABLE:
        return f"track needs a model that finds boxes (detect, segment, pose or obb); this one is {task}"
    if video and session:
        return "a video is tracked whole; track_session is for frames sent one at a time"
    if not video and not session:
        return (
            "track needs a video, or track_session=<id> for frames sent one at a time: a single "
            "image alone has no frames to follow its objects through"
        )
    return None


def session_namespace(caller: Principal) -> str:
    """Whose sessions a caller sees: its key's (a browser token's key alike)."""
    return ANONYMOUS_NAMESPACE if caller.anonymous else caller.key_id


async def _predict_session(
    request: Request,
    model: ModelCall,
    settings: Settings,
    form: PredictForm,
    sessions: TrackSessions,
    namespace: str,
) -> Response:
    """One frame of a track session: its state in, the frame through it, its state out."""
    options = model.options
    assert options.track_session is not None
    session = options.track_session
    headers = {SESSION_HEADER: session}
    binding = Binding(str(model.served.slug), options.tracker, options.tracking_binding())
    try:
        async with sessions.turn(namespace, session, binding) as turn:
            tracking = VideoTracking(options, turn.state)
            with model.engine.in_flight.slot():
                response = await predict_image(request, replace(model, tracking=tracking), settings, form)
            turn.save(tracking.dumps())
    except SessionGone as exc:
        raise Gone(str(exc), headers=headers) from None
    except SessionMismatch as exc:
        raise Conflict(str(exc), headers=headers) from None
    except StoreUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    response.headers.update({**headers, FRAME_HEADER: str(turn.frame)})
    if turn.evicted is not None:
        response.headers[EVICTED_HEADER] = turn.evicted
    return response


async def predict_form(
    request: Request,
    engine: Engine,
    settings: Settings,
    served: ServedModel,
    form: PredictForm,
    contract: Format,
    started: float,
    sessions: TrackSessions,
    caller: Principal,
) -> Response:
    """The answer in `contract`; `started` is the call's `time.perf_counter()` (the Platform's
    `functionTimeCall` counts from it)."""
    options = form.options
    call = engine.call(served, started)
    model = ModelCall(engine, served, decoder_for(served.spec), options, contract, call)
    session = options.track_session is not None
    refusal = track_refusal(served.spec.task, form.video is not None, session) if options.track else None
    if refusal is not None:
        if form.video is not None:
            form.video.file.close()  # `predict_video` closes it on every other path
        raise InvalidRequest(refusal)
    if form.video is not None:
        tracking = VideoTracking(options) if options.track else None
        return await predict_video(request, replace(model, tracking=tracking), settings, form.video)
    if session:
        return await _predict_session(request, model, settings, form, sessions, session_namespace(caller))
    with engine.in_flight.slot():
        return await predict_image(request, model, settings, form)
