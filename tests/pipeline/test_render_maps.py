"""Semantic and depth renderings: the maps as PNGs that decode back, and `pixel_ratio` as
Ultralytics' `Results.summary()` computes it."""

from __future__ import annotations

import base64
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from ultralytics.engine.results import Results

from frontend.errors import InvalidRequest
from frontend.schemas import PlatformImage, PredictResponse
from frontend.serving.form import parse_options
from pipeline.contract import PredictOptions
from pipeline.render_maps import decode_depth_png, decode_mask_png, depth_object, map_objects
from pipeline.render_platform import platform_image, platform_results
from pipeline.render_seed import seed_body, seed_predictions
from pipeline.result import Result, Speed
from tests.helpers.sdk_contract import assert_matches


def _result(task: Any, **maps: Any) -> Result:
    names = {i: f"class{i}" for i in range(19)} if task == "semantic" else {0: "depth"}
    hw = next(iter(maps.values())).shape
    return Result(task, names, hw, np.zeros(0, np.int64), np.zeros(0, np.float32), **maps)


def _depth(hw: tuple[int, int] = (301, 457)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.exp(rng.normal(1.0, 1.2, hw)).astype(np.float32)


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_depth_png_round_trip(bits: int) -> None:
    depth = _depth()
    depth[0, :5] = 0.0  # no depth
    depth[1, 0] = np.nan
    obj = depth_object(depth, bits)  # type: ignore[arg-type]
    valid = depth > 0
    assert obj["bits"] == bits and obj["shape"] == [301, 457] and obj["encoding"] == "png"
    assert obj["max"] == float(depth[valid].max()) and obj["min"] == float(depth[valid].min())
    decoded = decode_depth_png(obj)
    step = obj["max"] / (2**bits - 1)
    assert decoded.shape == depth.shape
    assert np.abs(decoded[valid] - depth[valid]).max() <= step * (1 + 1e-6)
    assert (decoded[~np.nan_to_num(depth, nan=0).astype(bool)] == 0).all()
    assert (decoded[valid] > 0).all()  # a valid depth never reads as "no depth"
    raw = cv2.imdecode(np.frombuffer(base64.b64decode(obj["data"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == (np.uint8 if bits == 8 else np.uint16)
    assert int(raw.max()) == 2**bits - 1  # 12 bits: a uint16 PNG with values up to 4095


def test_depth_without_any_valid_pixel() -> None:
    obj = depth_object(np.zeros((4, 5), np.float32), 16)
    assert (obj["min"], obj["max"]) == (0.0, 0.0)
    assert (decode_depth_png(obj) == 0).all()


def test_semantic_mask_png_round_trip_and_pixel_ratio_is_summary() -> None:
    rng = np.random.default_rng(3)
    mask = rng.integers(0, 19, (240, 333), dtype=np.uint8)
    mask[:, :40] = 4
    mask[:3] = 255  # an ignore label: no row
    result = _result("semantic", semantic_mask=mask)
    obj = map_objects(result, 8)["semantic_mask"]
    assert obj["shape"] == [240, 333]
    np.testing.assert_array_equal(decode_mask_png(obj), mask)
    reference = Results(
        np.zeros((240, 333, 3), np.uint8), "x.jpg", result.names, semantic_mask=torch.from_numpy(mask)
    ).summary(decimals=4)
    options = PredictOptions(decimals=4)
    assert platform_results(result, options) == reference
    seed = seed_predictions(result, options)
    assert seed == [
        {"class": r["name"], "class_id": r["class"], "pixel_ratio": r["pixel_ratio"]} for r in reference
    ]
    assert abs(sum(r["pixel_ratio"] for r in reference) - (1 - 3 * 333 / mask.size)) < 1e-3


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_platform_and_seed_answers_carry_the_map(bits: int) -> None:
    options = PredictOptions(bits=bits)  # type: ignore[arg-type]
    for result in (
        _result("depth", depth=_depth((20, 30))),
        _result("semantic", semantic_mask=np.ones((20, 30), np.uint8)),
    ):
        maps = map_objects(result, options.bits)
        image = platform_image(platform_results(result, options), result, Speed(), maps)
        PlatformImage.model_validate(image)
        seed = seed_body(seed_predictions(result, options), result, Speed(), maps)
        PredictResponse.model_validate(seed)
        key = "depth" if result.task == "depth" else "semantic_mask"
        assert set(maps) == {key} and image[key] is seed[key]
        if result.task == "depth":
            assert image["results"] == [] and seed["predictions"] == [] and image["depth"]["bits"] == bits
        body = {
            "images": [image],
            "metadata": {
                "imageCount": 1,
                "functionTimeAlive": 1.0,
                "functionTimeCall": 0.1,
                "model": "a/b/c",
                "task": result.task,
                "version": {"trident": "0"},
                "classNames": list(result.names.values()),
            },
        }
        from ultralytics_platform.types import ModelsPredictResponse

        assert_matches(body, ModelsPredictResponse)


def test_other_tasks_get_no_map_keys() -> None:
    result = Result("detect", {0: "a"}, (10, 10), np.zeros(0, np.int64), np.zeros(0, np.float32))
    assert map_objects(result, 16) == {}
    assert set(platform_image([], result, Speed(), map_objects(result, 16))) == {"shape", "speed", "results"}


@pytest.mark.parametrize("value", ["10", "7", "x", "8.5", "-8"])
def test_bits_other_than_8_12_16_name_the_field(value: str) -> None:
    with pytest.raises(InvalidRequest, match=f"bits must be 8, 12 or 16, got '{value}'"):
        parse_options({"bits": value})
    assert parse_options({"bits": "16"}).bits == 16 and parse_options({"bits": ""}).bits == 8
