"""The `track` option without Triton: its declaration, its refusals, a frame through the tracker, and
the renderings (`track_id` only on tracked frames, the `tracks` summary only when asked; both
contracts' schemas hold). Parity of the ids with `model.track()` through the served model is
`tests/integration/test_track_video.py`'s; of the trackers alone, `tests/postprocess/test_trackers.py`'s.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import pytest
import torch
from ultralytics.engine.results import Results
from ultralytics.utils import YAML
from ultralytics.utils.checks import check_yaml
from ultralytics_platform.types import ModelsPredictResponse

from frontend.errors import InvalidRequest
from frontend.schemas import (
    PlatformPredictResponse,
    VideoFrame,
    VideoResponse,
    VideoSummary,
)
from frontend.serving.form import parse_options
from frontend.serving.predict import track_refusal
from pipeline.contract import TRACK_CONF, PredictOptions, form_schema
from pipeline.formats import PLATFORM, SEED, Call
from pipeline.render_platform import ModelInfo
from pipeline.result import Result, Speed, VideoInfo
from pipeline.tracking import VideoTracking
from postprocess.obb import OrientedBoxes
from tests.helpers.sdk_contract import assert_matches

# what the YAMLs set that is no request option: the tracker's kind, and BoT-SORT's ReID and GMC
NOT_OPTIONS = {"tracker_type", "gmc_method", "proximity_thresh", "appearance_thresh", "with_reid", "model"}
H, W = 240, 320
NAMES = {0: "square", 1: "circle"}
MODEL = ModelInfo("acme/shapes/det", "detect", NAMES, {"trident": "test"})
SPEED = Speed(1.0, 2.0, 3.0)
VIDEO = VideoInfo(W, H, 24.0, 3)


def parsed(body: Any) -> Any:
    return orjson.loads(orjson.dumps(body))


# --- the option -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tracker", ["bytetrack", "botsort"])
def test_the_tracker_defaults_are_ultralytics_yamls(tracker: str) -> None:
    """Every threshold of the YAML is an option under its own name, with the YAML's value."""
    yaml = YAML.load(check_yaml(f"{tracker}.yaml"))
    thresholds = {name: value for name, value in yaml.items() if name not in NOT_OPTIONS}
    assert len(thresholds) == 6
    options = PredictOptions()
    assert {name: getattr(options, name) for name in thresholds} == thresholds
    assert options.tracker_config().gmc_method == yaml.get("gmc_method", "sparseOptFlow")
    fields = form_schema()["properties"]
    assert isinstance(fields, dict)
    assert all("with track" in fields[name]["description"] for name in thresholds)


def test_track_is_off_by_default_and_predicts_at_model_track_s_conf() -> None:
    assert parse_options({}).track is False and parse_options({}).conf == 0.25
    assert parse_options({"track": "true"}).conf == TRACK_CONF == 0.1  # model.track()'s default
    assert parse_options({"track": "true", "conf": "0.4"}).conf == 0.4  # a given conf is kept
    assert parse_options({"track": "false"}).conf == 0.25
    assert parse_options({"track": "1", "tracker": "bytetrack"}).tracker == "bytetrack"
    assert parse_options({"track": "true"}).tracker == "botsort"  # model.track()'s default tracker


def test_the_request_s_thresholds_reach_the_tracker() -> None:
    options = parse_options(
        {"track": "on", "track_buffer": "5", "match_thresh": "0.6", "fuse_score": "false"}
    )
    config = options.tracker_config()
    assert (config.track_buffer, config.match_thresh, config.fuse_score) == (5, 0.6, False)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("track", "maybe", "track must be true or false"),
        ("tracker", "deepsort", "tracker must be bytetrack or botsort"),
        ("track_high_thresh", "1.5", "track_high_thresh must be a number between 0 and 1"),
        ("track_buffer", "-1", "track_buffer must be an integer between 0 and 10000"),
        ("track_buffer", "2.5", "track_buffer must be an integer between 0 and 10000"),
        ("fuse_score", "sometimes", "fuse_score must be true or false"),
    ],
)
def test_a_bad_tracking_option_names_its_field_and_range(field: str, value: str, rule: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_options({"track": "true", field: value})
    assert caught.value.detail == f"{rule}, got {value!r}"


def test_the_openapi_form_declares_the_options_with_their_bounds() -> None:
    fields = form_schema()["properties"]
    assert isinstance(fields, dict)
    assert fields["track"]["default"] is False
    assert fields["tracker"]["enum"] == ["bytetrack", "botsort"]
    assert (fields["track_buffer"]["minimum"], fields["track_buffer"]["maximum"]) == (0, 10000)


@pytest.mark.parametrize("task", ["classify", "semantic", "depth"])
def test_tasks_without_boxes_refuse_track(task: str) -> None:
    refusal = track_refusal(task, video=True)
    assert (
        refusal is not None and f"this one is {task}" in refusal and "detect, segment, pose or obb" in refusal
    )


@pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb"])
def test_a_still_image_is_refused_and_a_video_tracked(task: str) -> None:
    assert track_refusal(task, video=True) is None
    refusal = track_refusal(task, video=False)
    assert refusal is not None and refusal.startswith("track needs a video")


# --- a frame through the tracker ------------------------------------------------------------------
def pose_frame(xyxy: list[list[float]], conf: list[float], cls: list[int]) -> Result:
    boxes = np.array(xyxy, np.float32).reshape(-1, 4)
    keypoints = np.stack([boxes[:, :2], boxes[:, 2:]], 1)  # each box's own corners: rows stay together
    return Result(
        "pose",
        NAMES,
        (H, W),
        np.array(cls, np.int64),
        np.array(conf, np.float32),
        xyxy=boxes,
        keypoints=keypoints,
    )


def test_frames_show_what_model_track_shows() -> None:
    tracking = VideoTracking(PredictOptions(track=True, tracker="bytetrack"))
    # first frame: only a weak box, which cannot start a track: shown untracked
    weak = tracking.step(pose_frame([[10, 10, 40, 40]], [0.15], [0]), None)
    assert weak.track_id is None and len(weak) == 1
    # a confident box starts a track, confirmed by the next frame
    pending = tracking.step(pose_frame([[100, 100, 150, 160], [10, 10, 40, 40]], [0.9, 0.15], [1, 0]), None)
    assert pending.track_id is None and len(pending) == 0  # hidden until confirmed
    moved = pose_frame([[5, 5, 35, 35], [103, 101, 153, 161]], [0.12, 0.88], [0, 1])
    shown = tracking.step(moved, None)
    assert shown.track_id is not None and shown.track_id.tolist() == [1]
    assert shown.cls.tolist() == [1] and shown.conf.tolist() == [np.float32(0.88)]
    assert shown.keypoints is not None and np.array_equal(shown.keypoints[0], moved.keypoints[1])  # type: ignore[index]
    # the tracker's filtered box, near the detection but not it
    assert np.abs(shown.xyxy[0] - moved.xyxy[1]).max() < 3 and not np.array_equal(
        shown.xyxy[0], moved.xyxy[1]
    )
    assert tracking.counts() == {1: 1}


def test_oriented_frames_get_corners_of_the_tracked_boxes() -> None:
    tracking = VideoTracking(PredictOptions(track=True, tracker="botsort"))
    image = np.zeros((H, W, 1), np.uint8)
    for step in range(4):
        xywhr = np.array([[60 + 3 * step, 80, 50, 20, 0.3], [200, 150 - 2 * step, 40, 25, 1.0]], np.float32)
        obb = OrientedBoxes(xywhr, np.array([0.9, 0.8], np.float32), np.array([0, 1], np.int64))
        frame = Result("obb", NAMES, (H, W), obb.cls, obb.conf, xywhr=xywhr, corners=obb.corners())
        shown = tracking.step(frame, tracking.camera_motion(image))
    assert shown.track_id is not None and sorted(shown.track_id.tolist()) == [1, 2]
    assert shown.xywhr is not None and shown.corners is not None
    expected = OrientedBoxes(shown.xywhr, shown.conf, shown.cls).corners()
    assert np.array_equal(shown.corners, expected)
    assert tracking.counts() == {0: 1, 1: 1}


# --- the renderings -------------------------------------------------------------------------------
def tracked_detection(ids: list[int] | None) -> Result:
    return Result(
        "detect",
        NAMES,
        (H, W),
        np.array([1, 0], np.int64),
        np.array([0.9, 0.4], np.float32),
        np.array([[10.5, 20.25, 110, 220], [0, 0, 64, 48]], np.float32),
        track_id=None if ids is None else np.array(ids, np.int64),
    )


def call() -> Call:
    return Call(MODEL, time.monotonic() - 5, time.perf_counter())


def test_platform_rows_are_summary_of_model_track_s_results() -> None:
    """`track_id` right after `box`, as `Results.summary()` of a tracked frame has it."""
    result = tracked_detection([7, 3])
    table = np.concatenate(
        [result.xyxy, result.track_id[:, None], result.conf[:, None], result.cls[:, None]],  # type: ignore[index]
        1,
        dtype=np.float32,
    )
    theirs = Results(np.zeros((H, W, 3), np.uint8), "x", NAMES, torch.from_numpy(table))
    ours = PLATFORM.rows(result, PredictOptions())
    assert ours == theirs.summary() and list(ours[0]) == list(theirs.summary()[0])
    assert [row["track_id"] for row in SEED.rows(result, PredictOptions())] == [7, 3]


@pytest.mark.parametrize("ids", [None, [7, 3]])
def test_both_contracts_validate_with_and_without_tracks(ids: list[int] | None) -> None:
    result = tracked_detection(ids)
    tracks = None if ids is None else {0: 1, 1: 1}
    seed_frames = [SEED.frame(i, SEED.rows(result, PredictOptions()), result, SPEED, {}) for i in (0, 1)]
    seed = parsed(SEED.video(seed_frames, VIDEO, call(), tracks))
    VideoResponse.model_validate(seed)
    for frame in seed["frames"]:
        VideoFrame.model_validate(frame)
    end = parsed(SEED.video_end(2, VIDEO, call(), tracks))
    VideoSummary.model_validate(end)
    platform_frames = [
        PLATFORM.frame(i, PLATFORM.rows(result, PredictOptions()), result, SPEED, {}) for i in (0, 1)
    ]
    platform = parsed(PLATFORM.video(platform_frames, VIDEO, call(), tracks))
    PlatformPredictResponse.model_validate(platform)
    platform_end = parsed(PLATFORM.video_end(2, VIDEO, call(), tracks))
    assert platform_end["metadata"]["imageCount"] == 2
    if ids is None:  # an ordinary answer: exactly the Platform's shape, and no tracking keys anywhere
        assert_matches(platform, ModelsPredictResponse)
        assert "tracks" not in seed and "tracks" not in end and "tracks" not in platform_end["metadata"]
        assert "track_id" not in str(seed) + str(platform)
        return
    assert (
        seed["tracks"]
        == end["tracks"]
        == [
            {"class": "square", "class_id": 0, "count": 1},
            {"class": "circle", "class_id": 1, "count": 1},
        ]
    )
    assert (
        platform["metadata"]["tracks"]
        == platform_end["metadata"]["tracks"]
        == [
            {"name": "square", "class": 0, "count": 1},
            {"name": "circle", "class": 1, "count": 1},
        ]
    )
    assert [r["track_id"] for r in platform["images"][0]["results"]] == [7, 3]
