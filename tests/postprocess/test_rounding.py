"""Vectorised rounding must give exactly what `round(x, ndigits)` gives, as Ultralytics rounds."""

from __future__ import annotations

import numpy as np
import pytest

from postprocess.rounding import round_like_python


def python_round(values: np.ndarray, ndigits: int) -> np.ndarray:
    return np.array([round(float(v), ndigits) for v in values.ravel()]).reshape(values.shape)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit: NaN where the other is NaN, and the sign of zero too."""
    return bool(((a == b) | (np.isnan(a) & np.isnan(b))).all() and (np.signbit(a) == np.signbit(b)).all())


@pytest.mark.parametrize("ndigits", [0, 2, 5])
def test_float32_coordinates_and_scores_round_as_python_rounds_them(ndigits: int) -> None:
    rng = np.random.default_rng(0)
    boxes = (rng.random((3000, 4)) * 8000 - 500).astype(np.float32)  # as they leave scale_boxes
    scores = rng.random(3000).astype(np.float32)
    assert same(round_like_python(boxes, ndigits), python_round(boxes, ndigits))
    assert same(round_like_python(scores, ndigits), python_round(scores, ndigits))


def test_values_next_to_a_half_way_point_round_the_way_python_does() -> None:
    # x * 10**5 lands on or within one rounding error of k + 0.5: np.round gets some of these wrong
    halves = (np.arange(1, 20001, dtype=np.float64) + 0.5) / 1e5
    near = np.concatenate([halves, np.nextafter(halves, 0), np.nextafter(halves, 1), -halves])
    expected = python_round(near, 5)
    assert not np.array_equal(np.round(near, 5), expected)  # the case this module exists for
    assert same(round_like_python(near, 5), expected)


def test_ties_zeros_infinities_nan_and_huge_values() -> None:
    odd = np.array(
        [0.0, -0.0, -1e-7, 0.015625, 2.5, -2.5, np.inf, -np.inf, np.nan, 1e300, 5e-324, 123456789.123455]
    )
    assert same(round_like_python(odd, 5), python_round(odd, 5))


def test_the_shape_is_kept() -> None:
    corners = np.arange(24, dtype=np.float32).reshape(3, 4, 2) / 7
    assert round_like_python(corners, 5).shape == (3, 4, 2)
    assert round_like_python(corners, 5).tolist() == python_round(corners, 5).tolist()
