"""The two contracts as objects, one each: `SEED` (the reference page's) and `PLATFORM` (the
Ultralytics Platform's). Each renders an image's answer, a video's (whole, or its NDJSON lines)
and an error body in its own shape.

A request's contract is chosen once (`frontend.formats.resolve_format`) and handed down as one of
these; nothing else asks which contract it is in.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
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


class Format(ABC):
    """One contract's renderings. `rows` may come pre-serialised (an `orjson.Fragment`), and so
    may the values of `maps` (`semantic_mask`, `depth`)."""

    name: ApiFormat
    has_405: bool  # whether a wrong method is a 405 (else a 404: an operation the contract lacks)

    @abstractmethod
    def rows(self, result: Result, options: PredictOptions) -> list[dict[str, Any]]:
        """One image's predictions."""

    @abstractmethod
    def image(
        self, rows: object, result: Result, speed: Speed, maps: dict[str, object], call: Call
    ) -> dict[str, Any]:
        """The whole answer for one image."""

    @abstractmethod
    def frame(
        self, index: int, rows: object, result: Result, speed: Speed, maps: dict[str, object]
    ) -> dict[str, Any]:
        """One processed frame of a video: an entry of the whole answer, and one NDJSON line."""

    @abstractmethod
    def video(self, frames: list[dict[str, Any]], info: VideoInfo, call: Call) -> dict[str, Any]:
        """The whole answer for a video."""

    @abstractmethod
    def video_end(self, processed: int, info: VideoInfo, call: Call) -> dict[str, Any]:
        """The last NDJSON line of a video that was processed to its end."""

    @abstractmethod
    def error(self, code: str, message: str, detail: str) -> dict[str, Any]:
        """An error's body. Never a stack trace."""


class Seed(Format):
    """`{"success", "predictions", "image", "speed"}`; errors `{"success": false, "error": {"code",
    "message", "detail"}}`."""

    name: ApiFormat = "seed"
    has_405 = True

    def rows(self, result: Result, options: PredictOptions) -> list[dict[str, Any]]:
        return seed_predictions(result, options)

    def image(
        self, rows: object, result: Result, speed: Speed, maps: dict[str, object], call: Call
    ) -> dict[str, Any]:
        return seed_body(rows, result, speed, maps)

    def frame(
        self, index: int, rows: object, result: Result, speed: Speed, maps: dict[str, object]
    ) -> dict[str, Any]:
        return {"frame": index, "predictions": rows, **maps, "speed": speed.as_dict()}

    def video(self, frames: list[dict[str, Any]], info: VideoInfo, call: Call) -> dict[str, Any]:
        return {"success": True, "frames": frames, "video": info.as_dict()}

    def video_end(self, processed: int, info: VideoInfo, call: Call) -> dict[str, Any]:
        return {"success": True, "video": info.as_dict(), "processed": processed}

    def error(self, code: str, message: str, detail: str) -> dict[str, Any]:
        return {"success": False, "error": {"code": code, "message": message, "detail": detail}}


class Platform(Format):
    """`{"images", "metadata"}` and nothing else, as its contract allows; a video is one `images`
    entry per processed frame; errors `{"error": "<message>: <detail>"}`. The contract has no 405."""

    name: ApiFormat = "platform"
    has_405 = False

    def rows(self, result: Result, options: PredictOptions) -> list[dict[str, Any]]:
        return platform_results(result, options)

    def image(
        self, rows: object, result: Result, speed: Speed, maps: dict[str, object], call: Call
    ) -> dict[str, Any]:
        return platform_body([platform_image(rows, result, speed, maps)], call.model, *call.seconds())

    def frame(
        self, index: int, rows: object, result: Result, speed: Speed, maps: dict[str, object]
    ) -> dict[str, Any]:
        return platform_image(rows, result, speed, maps)

    def video(self, frames: list[dict[str, Any]], info: VideoInfo, call: Call) -> dict[str, Any]:
        return platform_body(frames, call.model, *call.seconds())

    def video_end(self, processed: int, info: VideoInfo, call: Call) -> dict[str, Any]:
        metadata = platform_body([], call.model, *call.seconds())["metadata"]
        return {"metadata": {**metadata, "imageCount": processed}}

    def error(self, code: str, message: str, detail: str) -> dict[str, Any]:
        return {"error": message if detail == message else f"{message}: {detail}"}


SEED, PLATFORM = Seed(), Platform()
FORMATS: dict[ApiFormat, Format] = {f.name: f for f in (SEED, PLATFORM)}
