"""Scaling boxes back to the image agrees with Ultralytics' `scale_boxes`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ultralytics.utils.ops import scale_boxes as ul_scale_boxes
from ultralytics.utils.ops import xywh2xyxy

from postprocess.boxes import scale_boxes, xywh_to_xyxy


@pytest.mark.parametrize(
    ("input_hw", "orig_hw"),
    [((640, 640), (1080, 810)), ((384, 640), (720, 1280)), ((640, 640), (3000, 12)), ((32, 640), (37, 1001))],
)
def test_scale_boxes_matches_ultralytics(input_hw: tuple[int, int], orig_hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(-20, 600, (200, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 200, (200, 2))], 1).astype(np.float32)
    expected = ul_scale_boxes(input_hw, torch.from_numpy(boxes.copy()), orig_hw).numpy()
    np.testing.assert_array_equal(scale_boxes(boxes, input_hw, orig_hw), expected)


def test_xywh_to_xyxy_matches_ultralytics() -> None:
    boxes = np.random.default_rng(1).uniform(0, 640, (50, 4)).astype(np.float32)
    np.testing.assert_array_equal(xywh_to_xyxy(boxes), xywh2xyxy(torch.from_numpy(boxes)).numpy())
