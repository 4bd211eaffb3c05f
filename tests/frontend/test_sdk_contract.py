"""The SDK-contract checker itself: it passes a correct answer and names the path of every fault."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from ultralytics_platform.types import (
    ModelsListResponse,
    ModelsPredictResponse,
    ModelsRetrieveResponse,
    ModelsRetrieveResponseVariant1,
)

from tests.helpers.sdk_contract import assert_matches


def predict_sample() -> dict[str, Any]:
    """A Platform predict answer with one result of each shape (box, OBB box, segments, keypoints)."""
    return {
        "images": [
            {
                "shape": [1080, 810],
                "speed": {"preprocess": 1.5, "inference": 20, "postprocess": 0.25},
                "results": [
                    {
                        "name": "person",
                        "class": 0,
                        "confidence": 0.91,
                        "box": {"x1": 1.0, "y1": 2.5, "x2": 30, "y2": 40.25},
                        "segments": {"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0]},
                        "keypoints": {"x": [1.0, 2.0], "y": [3.0, 4.0], "visible": [0.5, 0.75]},
                    },
                    {
                        "name": "bus",
                        "class": 5,
                        "confidence": 0.5,
                        "box": {"x1": 1, "y1": 2, "x2": 3, "y2": 4, "x3": 5, "y3": 6, "x4": 7, "y4": 8},
                    },
                    {"name": "tench", "class": 0, "confidence": 0.1},
                ],
            }
        ],
        "metadata": {
            "imageCount": 1,
            "classNames": ["person", "bicycle"],
            "functionTimeAlive": 12.5,
            "functionTimeCall": 0.03,
            "model": "test/coco/yolo11n",
            "task": "detect",
            "version": {"trident": "0.1.0"},
        },
    }


def model_item() -> dict[str, Any]:
    return {
        "id": "test/coco/yolo11n",
        "owner": "test",
        "project": "coco",
        "projectName": "coco",
        "model": "yolo11n",
        "visibility": "public",
        "name": "yolo11n",
        "task": "detect",
        "bestEpoch": None,
        "classNames": ["person"],
        "hasWeights": True,
        "starCount": 0,
        "isStarred": False,
        "createdAt": "2025-01-01T00:00:00Z",
        "updatedAt": "2025-01-01T00:00:00Z",
    }


def fails(value: Any, spec: Any, path: str) -> str:
    """The checker's message, which must name `path` (exactly, not as a prefix of a longer one)."""
    with pytest.raises(AssertionError) as caught:
        assert_matches(value, spec)
    message = str(caught.value)
    assert re.search(rf"{re.escape(path)}(?![\w\[.])", message), message
    return message


def test_correct_samples_pass() -> None:
    assert_matches(predict_sample(), ModelsPredictResponse)
    assert_matches({"models": [model_item()], "region": "us"}, ModelsListResponse)
    retrieved = {"model": {**model_item(), "metadata": {"anything": [1, "two"]}}, "isOwner": True}
    assert_matches(retrieved, ModelsRetrieveResponseVariant1)
    assert_matches(retrieved, ModelsRetrieveResponse)  # a union: either variant will do
    assert_matches({"analysis": None}, ModelsRetrieveResponse)


# (path to the dict that gets the extra key, as indexes into the sample)
LEVELS: list[tuple[str, tuple[str | int, ...]]] = [
    ("$", ()),
    ("$.images[0]", ("images", 0)),
    ("$.images[0].speed", ("images", 0, "speed")),
    ("$.images[0].results[0]", ("images", 0, "results", 0)),
    ("$.images[0].results[0].box", ("images", 0, "results", 0, "box")),
    ("$.images[0].results[0].segments", ("images", 0, "results", 0, "segments")),
    ("$.images[0].results[0].keypoints", ("images", 0, "results", 0, "keypoints")),
    ("$.images[0].results[2]", ("images", 0, "results", 2)),
    ("$.metadata", ("metadata",)),
]


def at(value: Any, where: tuple[str | int, ...]) -> Any:
    for step in where:
        value = value[step]
    return value


@pytest.mark.parametrize(("path", "where"), LEVELS, ids=[p for p, _ in LEVELS])
def test_an_extra_key_at_any_level_fails(path: str, where: tuple[str | int, ...]) -> None:
    sample = predict_sample()
    at(sample, where)["success"] = True
    assert "'success'" in fails(sample, ModelsPredictResponse, path)


@pytest.mark.parametrize(
    ("path", "where", "key"),
    [
        ("$", (), "metadata"),
        ("$.images[0]", ("images", 0), "shape"),
        ("$.images[0].speed", ("images", 0, "speed"), "inference"),
        ("$.images[0].results[1]", ("images", 0, "results", 1), "class"),
        ("$.images[0].results[0].box", ("images", 0, "results", 0, "box"), "y2"),
        ("$.images[0].results[0].segments", ("images", 0, "results", 0, "segments"), "y"),
        ("$.metadata", ("metadata",), "version"),
    ],
)
def test_a_missing_required_key_fails(path: str, where: tuple[str | int, ...], key: str) -> None:
    sample = predict_sample()
    del at(sample, where)[key]
    assert f"'{key}'" in fails(sample, ModelsPredictResponse, path)


def test_optional_keys_may_be_missing() -> None:
    sample = predict_sample()
    del sample["images"][0]["results"][0]["keypoints"]["visible"]  # no visibility channel
    for key in ("confidence", "segments", "keypoints", "box"):
        del sample["images"][0]["results"][0][key]
    del sample["metadata"]["classNames"], sample["metadata"]["task"], sample["metadata"]["model"]
    assert_matches(sample, ModelsPredictResponse)


def test_a_bool_is_not_an_int_nor_a_float() -> None:
    sample = predict_sample()
    sample["images"][0]["results"][1]["class"] = True
    fails(sample, ModelsPredictResponse, "$.images[0].results[1].class")
    sample = predict_sample()
    sample["metadata"]["imageCount"] = False
    fails(sample, ModelsPredictResponse, "$.metadata.imageCount")
    sample = predict_sample()
    sample["images"][0]["results"][0]["confidence"] = True
    fails(sample, ModelsPredictResponse, "$.images[0].results[0].confidence")


def test_a_float_is_not_an_int_but_an_int_is_a_float() -> None:
    sample = predict_sample()
    sample["images"][0]["results"][0]["class"] = 0.0
    fails(sample, ModelsPredictResponse, "$.images[0].results[0].class")
    sample = predict_sample()
    sample["images"][0]["results"][0]["box"]["x1"] = 1  # JSON has one number type
    assert_matches(sample, ModelsPredictResponse)


def test_a_str_is_not_a_float() -> None:
    sample = predict_sample()
    sample["images"][0]["results"][0]["box"]["x2"] = "30"
    fails(sample, ModelsPredictResponse, "$.images[0].results[0].box.x2")
    sample = predict_sample()
    sample["images"][0]["results"][0]["segments"]["y"][2] = "6.0"
    fails(sample, ModelsPredictResponse, "$.images[0].results[0].segments.y[2]")
    sample = predict_sample()
    sample["images"][0]["speed"]["inference"] = None
    fails(sample, ModelsPredictResponse, "$.images[0].speed.inference")


def test_non_finite_numbers_fail() -> None:
    sample = predict_sample()
    sample["images"][0]["results"][0]["confidence"] = float("nan")
    fails(sample, ModelsPredictResponse, "$.images[0].results[0].confidence")


def test_literals_unions_and_dicts() -> None:
    sample = predict_sample()
    sample["metadata"]["task"] = "detection"
    fails(sample, ModelsPredictResponse, "$.metadata.task")
    sample["metadata"]["task"] = None  # the contract allows null here
    assert_matches(sample, ModelsPredictResponse)
    sample["metadata"]["version"] = {"trident": 1}  # dict[str, str]
    fails(sample, ModelsPredictResponse, "$.metadata.version.trident")
    listed = {"models": [model_item()], "region": "mars"}
    fails(listed, ModelsListResponse, "$.region")
    item = model_item()
    item["bestEpoch"] = 1.5  # int | None
    fails({"models": [item], "region": "us"}, ModelsListResponse, "$.models[0].bestEpoch")
    item = model_item()
    item["visibility"] = "unlisted"
    fails({"models": [item], "region": "us"}, ModelsListResponse, "$.models[0].visibility")


def test_wrong_containers_fail() -> None:
    sample = predict_sample()
    sample["images"] = {"0": sample["images"][0]}
    fails(sample, ModelsPredictResponse, "$.images")
    sample = predict_sample()
    sample["images"][0]["results"][0]["segments"] = [[1.0, 4.0], [2.0, 5.0]]  # the seed format's polygon
    fails(sample, ModelsPredictResponse, "$.images[0].results[0].segments")
    sample = predict_sample()
    sample["images"][0]["results"][0]["keypoints"] = [{"x": 1.0, "y": 2.0, "conf": 0.5}]
    fails(sample, ModelsPredictResponse, "$.images[0].results[0].keypoints")
    fails([], ModelsPredictResponse, "$")


def test_the_checker_does_not_mutate_or_accept_a_seed_answer() -> None:
    seed = {
        "success": True,
        "predictions": [{"class": "person", "class_id": 0, "confidence": 0.9, "box": {}}],
        "image": {"width": 810, "height": 1080},
        "speed": {"preprocess": 1.0, "inference": 2.0, "postprocess": 3.0},
    }
    before = copy.deepcopy(seed)
    message = fails(seed, ModelsPredictResponse, "$")
    assert "'images'" in message
    assert seed == before
