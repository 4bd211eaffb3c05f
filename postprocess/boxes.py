"""Box geometry: format conversion and mapping from model-input pixels back to the image."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Float32Array = NDArray[np.float32]


def xywh_to_xyxy(xywh: Float32Array) -> Float32Array:
    """Centre/size to corners, computed as Ultralytics does (`xy -+ wh / 2`)."""
    out = np.empty_like(xywh)
    half = xywh[..., 2:4] / 2
    out[..., :2] = xywh[..., :2] - half
    out[..., 2:4] = xywh[..., :2] + half
    return out


def _gain_and_pad(input_hw: tuple[int, int], orig_hw: tuple[int, int]) -> tuple[float, float, int, int]:
    """Recompute the letterbox gains and padding from the two shapes (Ultralytics `scale_boxes`)."""
    h1, w1 = input_hw
    h0, w0 = orig_hw
    gain = min(h1 / h0, w1 / w0)
    new_h, new_w = max(round(h0 * gain), 1), max(round(w0 * gain), 1)
    pad_x, pad_y = round((w1 - new_w) / 2 - 0.1), round((h1 - new_h) / 2 - 0.1)
    return new_h / h0, new_w / w0, pad_x, pad_y


def scale_boxes(boxes: Float32Array, input_hw: tuple[int, int], orig_hw: tuple[int, int]) -> Float32Array:
    """Map xyxy boxes from the letterboxed input to original-image pixels and clip to the image.

    Works in float32 like Ultralytics (Python scalars do not upcast float32 arrays in NumPy 2).
    """
    gain_y, gain_x, pad_x, pad_y = _gain_and_pad(input_hw, orig_hw)
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] -= pad_x
    out[:, [1, 3]] -= pad_y
    out[:, [0, 2]] /= np.float32(gain_x)
    out[:, [1, 3]] /= np.float32(gain_y)
    h0, w0 = orig_hw
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w0)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h0)
    return out


def scale_coords(points: Float32Array, input_hw: tuple[int, int], orig_hw: tuple[int, int]) -> Float32Array:
    """Map `(..., 2)` x/y points from the letterboxed input to the image, clipped (`scale_coords`)."""
    gain_y, gain_x, pad_x, pad_y = _gain_and_pad(input_hw, orig_hw)
    out = points.astype(np.float32, copy=True)
    out[..., 0] -= pad_x
    out[..., 1] -= pad_y
    out[..., 0] /= np.float32(gain_x)
    out[..., 1] /= np.float32(gain_y)
    h0, w0 = orig_hw
    out[..., 0] = out[..., 0].clip(0, w0)
    out[..., 1] = out[..., 1].clip(0, h0)
    return out


def scale_xywh(boxes: Float32Array, input_hw: tuple[int, int], orig_hw: tuple[int, int]) -> Float32Array:
    """Map centre/size boxes (OBB) to the image: centre un-padded, all divided by the gains, no clipping."""
    gain_y, gain_x, pad_x, pad_y = _gain_and_pad(input_hw, orig_hw)
    out = boxes.astype(np.float32, copy=True)
    out[:, 0] -= pad_x
    out[:, 1] -= pad_y
    out[:, [0, 2]] /= np.float32(gain_x)
    out[:, [1, 3]] /= np.float32(gain_y)
    return out
