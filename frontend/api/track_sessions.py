"""The caller's track sessions (`track_session=<id>` on predict): list them, end one.

A caller sees its own key's sessions only (anonymous callers share one namespace). Ending a
session frees its id at once: the Test tab's webcam ends its session when the camera stops.
Errors are the Platform's `{"error": ...}`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.responses import Response

from frontend.deps import PredictCallerDep, ServicesDep
from frontend.errors import NotFound, ServiceUnavailable
from frontend.formats import json_response
from frontend.schemas import error_docs
from frontend.serving.predict import session_namespace
from pipeline.contract import TRACK_SESSION_PATTERN
from store.clock import iso
from store.track_sessions import StoreUnavailable

router = APIRouter(responses=error_docs(401, 403, 429, 503))
SessionId = Annotated[str, Path(min_length=1, max_length=64, pattern=TRACK_SESSION_PATTERN)]


class TrackSessionItem(BaseModel):
    id: str = Field(description="the `track_session` the frames name")
    model: str = Field(description="the model slug the session was started with")
    tracker: str = Field(description="botsort or bytetrack")
    frames: int = Field(description="frames tracked so far; the next is frames + 1")
    createdAt: str = Field(description="its first frame, ISO 8601 UTC")
    lastUsedAt: str = Field(description="its last frame, ISO 8601 UTC")
    idleSecondsLeft: float = Field(description="seconds until it ends unless a frame comes")


class TrackSessionList(BaseModel):
    sessions: list[TrackSessionItem]


@router.get(
    "/api/track-sessions",
    summary="Your live track sessions",
    responses={200: {"model": TrackSessionList}},
)
async def list_track_sessions(caller: PredictCallerDep, services: ServicesDep) -> Response:
    try:
        found = await services.track_sessions.sessions(session_namespace(caller))
    except StoreUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    items = [
        TrackSessionItem(
            id=s.id,
            model=s.model,
            tracker=s.tracker,
            frames=s.frames,
            createdAt=iso(s.created),
            lastUsedAt=iso(s.last_used),
            idleSecondsLeft=round(max(s.idle_left_s, 0.0), 3),
        ).model_dump()
        for s in found
    ]
    return json_response({"sessions": items})


@router.delete(
    "/api/track-sessions/{session_id}",
    status_code=204,
    summary="End a track session (its id is free at once)",
    responses={204: {"description": "ended"}, **error_docs(400, 404)},
)
async def end_track_session(
    session_id: SessionId, caller: PredictCallerDep, services: ServicesDep
) -> Response:
    try:
        ended = await services.track_sessions.end(session_namespace(caller), session_id)
    except StoreUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    if not ended:
        raise NotFound(f"no track session {session_id!r} for this key")
    return Response(status_code=204)
