"""The two contracts as objects, one each: `SEED` (the reference page's) and `PLATFORM` (the
Ultralytics Platform's). Each renders an image's answer, a video's (whole, or its NDJSON lines)
and an error body in its own shape.

A request's contract is chosen once (`frontend.formats.resolve_format`) and handed down as one of
these; nothing else asks which contract it is in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.contract import ApiFormat, PredictOptions
from pipeline.render_platform import ModelInfo, platform_body, platform_image, platform_results
from pipeline.render_seed import seed_body, seed_predictions
from pipeline.result import Result, Speed, VideoInfo


@dataclass(frozen=True)
class Call:
    """What an answer says about the call besides its predictions (the Platform's `metadata`)."""

    model: ModelInfo
    alive_since: float  # `time.monotonic()` when this worker started
    started: float  # `time.perf_counter()` when the call started

    def seconds(self) -> tuple[float, float]:
        """(seconds this worker has been up, seconds this call has taken), now."""
        return time.monotonic() - self.alive_since, time.perf_counter() - self.started


Body = dict[str, Any]
TrackCounts = dict[int, int]  # a tracked video's distinct track ids, by class id


@dataclass(frozen=True)
class Format:
    """One contract's renderings. `rows` may come pre-serialised (an `orjson.Fragment`), and so
    may the values of `maps` (`semantic_mask`, `depth`)."""

    name: ApiFormat
    has_405: bool  # whether a wrong method is a 405 (else a 404: an operation the contract lacks)
    rows: Callable[[Result, PredictOptions], list[Body]]  # one image's predictions
    image: Callable[[object, Result, Speed, dict[str, object], Call], Body]  # an image's whole answer
    # one processed frame of a video (index, rows, ...): an entry of the whole answer, and an NDJSON line
    frame: Callable[[int, object, Result, Speed, dict[str, object]], Body]
    # a video's whole answer, and the last NDJSON line of a video processed to its end (with its
    # processed frames' count); `TrackCounts` only when `track` was asked for
    video: Callable[[list[Body], VideoInfo, Call, TrackCounts | None], Body]
    video_end: Callable[[int, VideoInfo, Call, TrackCounts | None], Body]
    error: Callable[[str, str, str], Body]  # (code, message, detail) -> an error's body; never a trace


def _seed_tracks(tracks: TrackCounts | None, call: Call) -> Body:
    """`{"tracks": [{"class", "class_id", "count"}, ...]}` of a tracked video, else nothing."""
    if tracks is None:
        return {}
    names = call.model.names
    return {"tracks": [{"class": names.get(c, str(c)), "class_id": c, "count": n} for c, n in tracks.items()]}


def _platform_video(frames: list[Body], call: Call, tracks: TrackCounts | None, processed: int) -> Body:
    """The Platform's answer to a video; a tracked one's `metadata` says its `tracks`, as
    `[{"name", "class", "count"}, ...]`."""
    body = platform_body(frames, call.model, *call.seconds())
    body["metadata"]["imageCount"] = processed
    if tracks is not None:
        names = call.model.names
        body["metadata"]["tracks"] = [
            {"name": names.get(c, str(c)), "class": c, "count": n} for c, n in tracks.items()
        ]
    return body


# `{"success", "predictions", "image", "speed"}`; errors `{"success": false, "error": {"code",
# "message", "detail"}}`
SEED = Format(
    name="seed",
    has_405=True,
    rows=seed_predictions,
    image=lambda rows, result, speed, maps, call: seed_body(rows, result, speed, maps),
    frame=lambda index, rows, result, speed, maps: {
        "frame": index,
        "predictions": rows,
        **maps,
        "speed": speed.as_dict(),
    },
    video=lambda frames, info, call, tracks: {
        "success": True,
        "frames": frames,
        "video": info.as_dict(),
        **_seed_tracks(tracks, call),
    },
    video_end=lambda processed, info, call, tracks: {
        "success": True,
        "video": info.as_dict(),
        "processed": processed,
        **_seed_tracks(tracks, call),
    },
    error=lambda code, message, detail: {
        "success": False,
        "error": {"code": code, "message": message, "detail": detail},
    },
)
# `{"images", "metadata"}` and nothing else, as its contract allows; a video is one `images` entry
# per processed frame; errors `{"error": "<message>: <detail>"}`. The contract has no 405.
PLATFORM = Format(
    name="platform",
    has_405=False,
    rows=platform_results,
    image=lambda rows, result, speed, maps, call: platform_body(
        [platform_image(rows, result, speed, maps)], call.model, *call.seconds()
    ),
    frame=lambda index, rows, result, speed, maps: platform_image(rows, result, speed, maps),
    video=lambda frames, info, call, tracks: _platform_video(frames, call, tracks, len(frames)),
    video_end=lambda processed, info, call, tracks: {
        "metadata": _platform_video([], call, tracks, processed)["metadata"]
    },
    error=lambda code, message, detail: {"error": message if detail == message else f"{message}: {detail}"},
)
FORMATS: dict[ApiFormat, Format] = {f.name: f for f in (SEED, PLATFORM)}
