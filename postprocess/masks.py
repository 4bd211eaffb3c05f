"""Instance masks and their polygons, as Ultralytics' default (`retina_masks=False`) path.

Ultralytics builds every mask at the model-input size (logits upsampled bilinearly, thresholded
at 0, cropped by the input-space box), then traces polygons and scales them to the image. This
module computes the very same pixels, one instance at a time and only inside the instance's box
(plus a one-pixel margin for contour tracing): bilinear upsampling is separable, so the window is
`Wy @ logits @ Wx.T` with small interpolation matrices. Memory stays bounded by one box, however
many instances and however large the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from postprocess.boxes import scale_coords


def _interp_matrix(out_start: int, out_stop: int, in_size: int, out_size: int) -> NDArray[np.float32]:
    """Rows of the bilinear (align_corners=False) resize matrix `out_size x in_size` for outputs
    `out_start..out_stop-1`, matching torch `F.interpolate` and cv2 `INTER_LINEAR` on floats."""
    scale = in_size / out_size
    dst = np.arange(out_start, out_stop, dtype=np.float64)
    src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = (src - i0).astype(np.float32)
    m = np.zeros((len(dst), in_size), dtype=np.float32)
    rows = np.arange(len(dst))
    np.add.at(m, (rows, i0), 1 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


def mask_window(
    coeffs: NDArray[np.float32],
    protos: NDArray[np.float32],
    box: NDArray[np.float32],
    input_hw: tuple[int, int],
) -> tuple[NDArray[np.uint8], int, int]:
    """One instance's binary mask inside its box (+1 px margin) at input resolution.

    Returns the window and its top-left corner `(x0, y0)` in input pixels.
    """
    h1, w1 = input_hw
    c, hp, wp = protos.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    # pixels (r, c) kept by the crop: x1 <= c < x2 and y1 <= r < y2
    col0, col1 = max(math.ceil(x1), 0), min(math.ceil(x2), w1)
    row0, row1 = max(math.ceil(y1), 0), min(math.ceil(y2), h1)
    ex0, ey0, ex1, ey1 = max(col0 - 1, 0), max(row0 - 1, 0), min(col1 + 1, w1), min(row1 + 1, h1)
    window = np.zeros((max(ey1 - ey0, 0), max(ex1 - ex0, 0)), dtype=np.uint8)
    if col1 <= col0 or row1 <= row0:
        return window, ex0, ey0
    logits = (coeffs[None, :] @ protos.reshape(c, -1)).reshape(hp, wp)
    wy = _interp_matrix(row0, row1, hp, h1)
    wx = _interp_matrix(col0, col1, wp, w1)
    inside = (wy @ logits @ wx.T) > 0
    window[row0 - ey0 : row1 - ey0, col0 - ex0 : col1 - ex0] = inside
    return window, ex0, ey0


# Cross-product entries (point pairs) compared at once when joining contours: bounds the memory of
# one step (about a dozen int64 arrays of this length) however large the contours.
PAIR_BUDGET = 1 << 18


def _first_min(
    d: NDArray[np.int64], group_starts: NDArray[np.int64], group_of: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Per group of `d` (contiguous, starting at `group_starts`): the position of its first minimum,
    as `np.argmin` picks it."""
    lowest = np.minimum.reduceat(d, group_starts)
    hits = np.flatnonzero(d == lowest[group_of])
    _, first = np.unique(group_of[hits], return_index=True)
    return hits[first]


def _closest_pairs(
    points: NDArray[np.int64], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For each two consecutive contours `(i - 1, i)` of `points` (stacked, contour `i` at
    `starts[i]`, `lengths[i]` long): Ultralytics' `min_index`, the first pair (row-major) of their
    points at the smallest squared distance, as indices into each contour. Pairs are compared a
    batch at a time (`PAIR_BUDGET` point pairs), so 1,000 contours cost a few NumPy calls, not 1,000."""
    pairs = len(lengths) - 1
    in_a = np.empty(pairs, dtype=np.int64)
    in_b = np.empty(pairs, dtype=np.int64)
    sizes = lengths[:-1] * lengths[1:]
    x, y = points[:, 0], points[:, 1]
    p = 0
    while p < pairs:
        if sizes[p] > PAIR_BUDGET:  # one large pair: its rows a block at a time
            in_a[p], in_b[p] = _closest_in_blocks(points, starts[p : p + 2], lengths[p : p + 2])
            p += 1
            continue
        q = p + int(np.searchsorted(np.cumsum(sizes[p:]), PAIR_BUDGET, side="right"))
        q = max(q, p + 1)
        size = sizes[p:q]
        group_starts = np.concatenate([[0], np.cumsum(size)[:-1]])
        group_of = np.repeat(np.arange(q - p), size)
        a, b = np.divmod(
            np.arange(int(size.sum())) - group_starts[group_of], lengths[p + 1 : q + 1][group_of]
        )
        i, j = starts[p:q][group_of] + a, starts[p + 1 : q + 1][group_of] + b
        dx, dy = x[i] - x[j], y[i] - y[j]
        d = dx * dx + dy * dy
        chosen = _first_min(d, group_starts, group_of)
        in_a[p:q], in_b[p:q] = a[chosen], b[chosen]
        p = q
    return in_a, in_b


def _closest_in_blocks(
    points: NDArray[np.int64], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> tuple[int, int]:
    """`min_index` of two large contours, `PAIR_BUDGET` point pairs at a time (first minimum kept)."""
    a = points[starts[0] : starts[0] + lengths[0]]
    b = points[starts[1] : starts[1] + lengths[1]]
    rows = max(1, PAIR_BUDGET // len(b))
    best, at = -1, (0, 0)
    for r in range(0, len(a), rows):
        d = ((a[r : r + rows, None, :] - b[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(np.argmin(d, axis=None), d.shape)
        if best < 0 or d[i, j] < best:
            best, at = int(d[i, j]), (r + int(i), int(j))
    return at


def merged_outline(segments: Sequence[cv2.typing.MatLike]) -> NDArray[np.int32]:
    """Several contours (all `(k, 1, 2)` as `cv2.findContours` gives them, or all `(k, 2)`) joined
    into one polyline at their closest points: exactly
    `np.concatenate(ultralytics.data.converter.merge_multi_segment(segments))`, computed as one
    gather instead of a Python loop per contour (a thin mask traces into a thousand pieces).

    Ultralytics rolls each contour to start where it meets the previous one (middle ones reversed
    when they meet the next one earlier), closes it, and walks: the first contour whole, each
    middle one up to where it meets the next, the last whole, then back through the middle ones'
    remaining parts."""
    lengths = np.array([len(s) for s in segments], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    points = np.concatenate(segments).reshape(-1, 2).astype(np.int64)
    in_earlier, in_later = _closest_pairs(points, starts, lengths)  # pair (i, i+1): i's index, i+1's
    last = len(segments) - 1
    enter = np.concatenate([in_earlier[:1], in_later])  # where contour i meets i-1 (contour 0: meets 1)
    leave = np.concatenate([in_earlier, [0]])  # where a middle contour i meets i+1
    order = np.arange(len(segments))
    middle = (order > 0) & (order < last)
    flipped = middle & (enter > leave)
    shift = np.where(flipped, lengths - 1 - enter, enter)
    turn = np.abs(leave - enter)  # a middle contour's walk: 0..turn forward, turn..n on the way back
    # pieces in output order: (contour, first k, last k) of the closed, rolled contour k = 0..n
    ids = np.concatenate([np.arange(last + 1), np.arange(last - 1, 0, -1)])
    first_k = np.concatenate([np.zeros(last + 1, dtype=np.int64), turn[last - 1 : 0 : -1]])
    last_k = np.concatenate([np.where(middle, turn, lengths), lengths[last - 1 : 0 : -1]])
    count = last_k - first_k + 1
    piece = np.repeat(np.arange(len(ids)), count)
    k = first_k[piece] + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    seg = ids[piece]
    j = (k + shift[seg]) % lengths[seg]
    j = np.where(flipped[seg], lengths[seg] - 1 - j, j)
    merged: NDArray[np.int32] = points[starts[seg] + j].astype(np.int32)
    return merged


def polygon(window: NDArray[np.uint8], x0: int, y0: int) -> NDArray[np.float32]:
    """The instance's outline in input pixels: external contours, merged when several."""
    contours, _ = cv2.findContours(window, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 2), dtype=np.float32)
    points = merged_outline(contours) if len(contours) > 1 else contours[0].reshape(-1, 2)
    return np.asarray(points + np.array([x0, y0]), dtype=np.float32)


def decode_masks(
    rows: NDArray[np.float32],
    protos: NDArray[np.float32],
    input_hw: tuple[int, int],
    orig_hw: tuple[int, int],
) -> tuple[NDArray[np.bool_], list[NDArray[np.float32]]]:
    """For rows `(n, 6 + 32)` in input pixels: which instances keep a non-empty mask, and the
    polygon of each kept one in image pixels (`Results.masks.xy`)."""
    keep = np.zeros(len(rows), dtype=bool)
    polygons: list[NDArray[np.float32]] = []
    protos = protos.astype(np.float32, copy=False)
    for i, row in enumerate(rows):
        window, x0, y0 = mask_window(row[6:].astype(np.float32), protos, row[:4], input_hw)
        if not window.any():
            continue  # Ultralytics drops detections whose mask is empty
        keep[i] = True
        polygons.append(scale_coords(polygon(window, x0, y0), input_hw, orig_hw))
    return keep, polygons
