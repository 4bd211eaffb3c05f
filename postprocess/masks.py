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


def _min_index(a: NDArray[np.int32], b: NDArray[np.int32]) -> tuple[int, int]:
    dist = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmin(dist, axis=None), dist.shape)
    return int(i), int(j)


def merge_multi_segment(segments: list[NDArray[np.int32]]) -> list[NDArray[np.int32]]:
    """Join several contours into one polyline at their closest points (Ultralytics' converter)."""
    segs = [s.reshape(-1, 2) for s in segments]
    idx_list: list[list[int]] = [[] for _ in segs]
    for i in range(1, len(segs)):
        i1, i2 = _min_index(segs[i - 1], segs[i])
        idx_list[i - 1].append(i1)
        idx_list[i].append(i2)
    out: list[NDArray[np.int32]] = []
    last = len(idx_list) - 1
    for i, idx in enumerate(idx_list):  # forward pass
        if len(idx) == 2 and idx[0] > idx[1]:
            idx = [len(segs[i]) - 1 - x for x in idx]
            segs[i] = segs[i][::-1, :]
        segs[i] = np.roll(segs[i], -idx[0], axis=0)
        segs[i] = np.concatenate([segs[i], segs[i][:1]])
        if i in {0, last}:
            out.append(segs[i])
        else:
            out.append(segs[i][0 : idx[1] - idx[0] + 1])
    for i in range(last, -1, -1):  # backward pass: the tails of the middle segments
        if i not in {0, last}:
            nidx = abs(idx_list[i][1] - idx_list[i][0])
            out.append(segs[i][nidx:])
    return out


def polygon(window: NDArray[np.uint8], x0: int, y0: int) -> NDArray[np.float32]:
    """The instance's outline in input pixels: external contours, merged when several."""
    contours, _ = cv2.findContours(window, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 2), dtype=np.float32)
    outlines = [np.asarray(c, dtype=np.int32).reshape(-1, 2) for c in contours]
    points = np.concatenate(merge_multi_segment(outlines)) if len(outlines) > 1 else outlines[0]
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
