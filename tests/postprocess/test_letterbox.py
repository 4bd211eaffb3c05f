"""The letterbox must produce the very tensor Ultralytics feeds the model, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from ultralytics.data.augment import LetterBox

from postprocess.letterbox import apply_letterbox, letterbox_geometry, round_to_stride, to_model_input

SHAPES = [(1080, 810), (720, 1280), (517, 333), (37, 1001), (3000, 12), (640, 640), (1, 1), (479, 1283)]


@pytest.mark.parametrize(("h", "w"), SHAPES)
@pytest.mark.parametrize(
    ("target", "auto"), [((640, 640), False), ((640, 640), True), ((384, 640), False), ((320, 320), True)]
)
def test_letterbox_matches_ultralytics(h: int, w: int, target: tuple[int, int], auto: bool) -> None:
    rng = np.random.default_rng(h * 7 + w)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    expected = LetterBox(target, auto=auto, stride=32)(image=image)
    ours = apply_letterbox(image, letterbox_geometry(h, w, target, 32, auto))
    assert ours.shape == expected.shape
    assert np.array_equal(ours, expected)


def test_thin_images_keep_at_least_one_pixel() -> None:
    box = letterbox_geometry(3000, 12, (640, 640), 32, auto=False)
    assert (box.new_h, box.new_w) == (640, 3)
    assert box.left + box.new_w + box.right == 640


def test_odd_padding_goes_bottom_right() -> None:
    box = letterbox_geometry(517, 333, (640, 640), 32, auto=False)
    assert box.left + box.right == 640 - box.new_w
    assert box.right - box.left in (0, 1)


def test_model_input_is_rgb_chw_unit_range() -> None:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0] = 255  # blue in BGR
    x = to_model_input(image)
    assert x.shape == (3, 2, 3)
    assert x.dtype == np.float32
    assert x[2].max() == 1.0 and x[0].max() == 0.0  # blue ends up in the last (RGB) channel


@pytest.mark.parametrize(("size", "expected"), [(640, 640), (641, 672), (1, 32), (1280, 1280), (33, 64)])
def test_round_to_stride_matches_check_imgsz(size: int, expected: int) -> None:
    from ultralytics.utils.checks import check_imgsz

    assert round_to_stride(size, 32) == expected == check_imgsz(size, 32, min_dim=1)
