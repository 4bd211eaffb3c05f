"""The two contracts as objects: every answer they render has its contract's documented shape."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import pytest

from frontend.schemas import (
    ErrorResponse,
    PlatformErrorResponse,
    PlatformImage,
    PlatformPredictResponse,
    PredictResponse,
    VideoFrame,
    VideoResponse,
    VideoSummary,
)
from pipeline.contract import PredictOptions
from pipeline.formats import FORMATS, PLATFORM, SEED, Call
from pipeline.render_platform import ModelInfo
from pipeline.result import Result, Speed, VideoInfo

OPTIONS = PredictOptions()
MODEL = ModelInfo("acme/parking/yolo11n", "detect", {0: "person", 1: "car"}, {"trident": "test"})
SPEED = Speed(1.5, 20.25, 3.0)
VIDEO = VideoInfo(640, 480, 29.97, 90)


def detection() -> Result:
    return Result(
        "detect",
        MODEL.names,
        (480, 640),
        np.array([1, 0], np.int64),
        np.array([0.9, 0.4], np.float32),
        np.array([[10, 20, 110, 220], [0, 0, 64, 48]], np.float32),
    )


def call(alive_s: float = 12.0) -> Call:
    return Call(MODEL, time.monotonic() - alive_s, time.perf_counter())


def parsed(body: dict[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(body))  # rows may be pre-serialised, as the routes pass them


def test_each_format_is_found_by_its_contract_name() -> None:
    assert FORMATS == {"seed": SEED, "platform": PLATFORM}
    assert (SEED.has_405, PLATFORM.has_405) == (True, False)  # the Platform's contract has no 405


def test_the_seed_image_answer() -> None:
    result = detection()
    body = parsed(SEED.image(SEED.rows(result, OPTIONS), result, SPEED, {}, call()))
    PredictResponse.model_validate(body)
    assert body["image"] == {"width": 640, "height": 480} and body["speed"]["inference"] == 20.25
    assert [p["class"] for p in body["predictions"]] == ["car", "person"]


def test_the_platform_image_answer_says_which_model_ran_and_for_how_long() -> None:
    result = detection()
    rows = orjson.Fragment(orjson.dumps(PLATFORM.rows(result, OPTIONS)))
    body = parsed(PLATFORM.image(rows, result, SPEED, {}, call(alive_s=12.0)))
    PlatformPredictResponse.model_validate(body)
    metadata = body["metadata"]
    assert metadata["imageCount"] == 1 and metadata["model"] == MODEL.slug
    assert metadata["classNames"] == ["person", "car"]
    assert 12.0 <= metadata["functionTimeAlive"] < 13 and 0 <= metadata["functionTimeCall"] < 1
    assert [r["name"] for r in body["images"][0]["results"]] == ["car", "person"]


def test_the_seed_video_answer_whole_and_streamed() -> None:
    result = detection()
    frames = [SEED.frame(i, SEED.rows(result, OPTIONS), result, SPEED, {}) for i in (0, 3)]
    for frame in frames:
        VideoFrame.model_validate(parsed(frame))  # each is also one NDJSON line
    whole = parsed(SEED.video(frames, VIDEO, call(), None))
    VideoResponse.model_validate(whole)
    assert [f["frame"] for f in whole["frames"]] == [0, 3] and whole["video"]["frames"] == 90
    end = parsed(SEED.video_end(2, VIDEO, call(), None))
    VideoSummary.model_validate(end)
    assert end["processed"] == 2 and end["video"] == whole["video"]


def test_the_platform_video_answer_is_one_image_per_frame() -> None:
    result = detection()
    frames = [PLATFORM.frame(i, PLATFORM.rows(result, OPTIONS), result, SPEED, {}) for i in (0, 3)]
    for frame in frames:
        PlatformImage.model_validate(parsed(frame))
    whole = parsed(PLATFORM.video(frames, VIDEO, call(), None))
    PlatformPredictResponse.model_validate(whole)
    assert whole["metadata"]["imageCount"] == 2 and len(whole["images"]) == 2
    end = parsed(PLATFORM.video_end(2, VIDEO, call(), None))
    assert list(end) == ["metadata"] and end["metadata"]["imageCount"] == 2
    assert end["metadata"]["model"] == MODEL.slug


@pytest.mark.parametrize(
    ("detail", "platform_error"),
    [
        ("conf must be a number between 0 and 1", "Invalid request: conf must be a number between 0 and 1"),
        ("Invalid request", "Invalid request"),
    ],  # no detail beyond the message: said once
)
def test_errors_in_each_contract(detail: str, platform_error: str) -> None:
    seed = SEED.error("invalid_request", "Invalid request", detail)
    ErrorResponse.model_validate(seed)
    assert seed["error"] == {"code": "invalid_request", "message": "Invalid request", "detail": detail}
    platform = PLATFORM.error("invalid_request", "Invalid request", detail)
    PlatformErrorResponse.model_validate(platform)
    assert platform == {"error": platform_error}
