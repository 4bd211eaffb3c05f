"""Semantic and depth maps back to the original image, against Ultralytics' own functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ultralytics.engine.results import Results
from ultralytics.utils import ops

from postprocess.letterbox import letterbox_geometry
from postprocess.maps import (
    bilinear_align_corners,
    depth_to_original,
    nearest_indices,
    pixel_ratios,
    semantic_to_original,
)

SIZES = [(1080, 810), (720, 1280), (517, 333), (37, 1001), (3000, 12), (640, 640), (1, 5), (4000, 3000)]


@pytest.mark.parametrize(
    ("in_size", "out_size"), [(5, 7), (640, 1080), (480, 810), (640, 333), (7, 3000), (3, 6), (9, 4)]
)
def test_nearest_indices_match_pytorch(in_size: int, out_size: int) -> None:
    src = torch.arange(in_size, dtype=torch.float32)[None, None, None]
    expected = F.interpolate(src, (1, out_size), mode="nearest")[0, 0, 0].long().numpy()
    assert nearest_indices(in_size, out_size).tolist() == expected.tolist()


@pytest.mark.parametrize("orig_hw", SIZES)
def test_semantic_map_matches_ultralytics(orig_hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(orig_hw))
    box = letterbox_geometry(orig_hw[0], orig_hw[1], (640, 640), 32, auto=False)
    class_map = rng.integers(0, 19, (box.height, box.width), dtype=np.uint8)
    pred = torch.from_numpy(class_map)[None, None].float()
    expected = ops.scale_masks(pred, orig_hw, mode="nearest")[0, 0].to(torch.uint8).numpy()
    ours = semantic_to_original(class_map, (box.height, box.width), orig_hw)
    assert ours.dtype == np.uint8 and ours.shape == orig_hw
    np.testing.assert_array_equal(ours, expected)


def test_semantic_map_of_a_dynamic_rectangle() -> None:
    orig_hw = (1080, 810)
    box = letterbox_geometry(*orig_hw, (640, 640), 32, auto=True)
    class_map = np.random.default_rng(0).integers(0, 5, (box.height, box.width), dtype=np.uint8)
    expected = ops.scale_masks(torch.from_numpy(class_map)[None, None].float(), orig_hw, mode="nearest")
    np.testing.assert_array_equal(
        semantic_to_original(class_map, (box.height, box.width), orig_hw), expected[0, 0].byte().numpy()
    )


@pytest.mark.parametrize("orig_hw", SIZES)
@pytest.mark.parametrize("model_hw", [(640, 640), (160, 160)])
def test_depth_map_matches_ultralytics(orig_hw: tuple[int, int], model_hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(orig_hw))
    depth = np.exp(rng.normal(0, 1.5, model_hw)).astype(np.float32)
    t = F.interpolate(torch.from_numpy(depth)[None, None], (640, 640), mode="bilinear", align_corners=True)
    expected = F.interpolate(t, orig_hw, mode="bilinear", align_corners=True)[0, 0].numpy()
    ours = depth_to_original(depth, (640, 640), orig_hw)
    assert ours.dtype == np.float32 and ours.shape == orig_hw
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_bilinear_same_size_is_identity() -> None:
    depth = np.random.default_rng(1).random((4, 6), dtype=np.float32)
    assert bilinear_align_corners(depth, (4, 6)) is depth


@pytest.mark.parametrize("nc", [1, 3, 19])
def test_pixel_ratios_match_results_summary(nc: int) -> None:
    rng = np.random.default_rng(nc)
    high = 2 if nc == 1 else nc
    class_map = rng.integers(0, high, (300, 217), dtype=np.uint8)
    class_map[:7] = 255  # ignore label
    names = {i: f"c{i}" for i in range(nc)}
    summary = Results(
        np.zeros((300, 217, 3), np.uint8), "x.jpg", names, semantic_mask=torch.from_numpy(class_map)
    ).summary()
    ours = [
        {"name": names[c], "class": c, "pixel_ratio": round(r, 5)} for c, r in pixel_ratios(class_map, names)
    ]
    assert ours == summary
