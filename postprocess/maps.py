"""Dense per-pixel maps (semantic class maps, depth) back to the original image, as Ultralytics does.

- Semantic (`SemanticSegmentationPredictor.postprocess`, an exported graph's in-graph ArgMax class
  map): the letterbox padding is cropped as `ops.scale_masks` crops it, then the map is resized to
  the original image with PyTorch's `nearest` (`F.interpolate(mode="nearest")`): source index
  `min(floor(dst * float32(in / out)), in - 1)`, in float32 as PyTorch computes it.
- Depth (`DepthPredictor.postprocess`): the input was stretched to the model size (no letterbox,
  `scale_fill`), so the whole map is resized with PyTorch's bilinear `align_corners=True`:
  source `dst * float32((in - 1) / (out - 1))`, weights in float32, width first then height.

Both run in bounded memory on large images: index and weight vectors per axis, and the
full-size output written in bands of rows (no float64 or per-pixel coordinate maps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

BAND_ROWS = 256  # rows of the full-size output computed at once (bounds the temporaries)


def nearest_indices(in_size: int, out_size: int) -> NDArray[np.intp]:
    """PyTorch's `nearest_idx`: the source index of each output index along one axis."""
    if out_size == in_size:
        return np.arange(out_size, dtype=np.intp)
    if out_size == 2 * in_size:
        return np.arange(out_size, dtype=np.intp) >> 1
    scale = np.float32(in_size / out_size)  # compute_scales_value<float>: (float)in / out
    src = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.intp)
    clipped: NDArray[np.intp] = np.minimum(src, in_size - 1)
    return clipped


def letterbox_crop(input_hw: tuple[int, int], orig_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """`(top, bottom, left, right)` of the image inside the model input, as `ops.scale_masks` finds it."""
    im1_h, im1_w = input_hw
    im0_h, im0_w = orig_hw
    gain = min(im1_h / im0_h, im1_w / im0_w)
    pad_w, pad_h = (im1_w - max(round(im0_w * gain), 1)) / 2, (im1_h - max(round(im0_h * gain), 1)) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    return top, top + max(round(im0_h * gain), 1), left, left + max(round(im0_w * gain), 1)


def _nearest_to(class_map: NDArray[Any], hw: tuple[int, int]) -> NDArray[Any]:
    """`F.interpolate(map, hw, mode="nearest")` on a 2-D map, same dtype."""
    h, w = class_map.shape
    if (h, w) == hw:
        return class_map
    rows, cols = nearest_indices(h, hw[0]), nearest_indices(w, hw[1])
    out = np.empty(hw, dtype=class_map.dtype)
    narrow = class_map[:, cols]  # (h, W): the width pass once, then whole rows are copied
    for start in range(0, hw[0], BAND_ROWS):
        out[start : start + BAND_ROWS] = narrow[rows[start : start + BAND_ROWS]]
    return out


def semantic_to_original(
    class_map: NDArray[Any], input_hw: tuple[int, int], orig_hw: tuple[int, int]
) -> NDArray[np.uint8]:
    """An in-graph class map `(h, w)` (any integer or float dtype holding class ids) -> the
    original image's `(H, W)` uint8 class map, as `SemanticSegmentationPredictor` builds it."""
    ids = class_map if class_map.dtype == np.uint8 else class_map.astype(np.uint8)
    if ids.shape != input_hw:  # Ultralytics first brings a smaller map to the input size, nearest
        ids = _nearest_to(ids, input_hw)
    if ids.shape == orig_hw:  # scale_masks returns a map of the target size unchanged
        return np.ascontiguousarray(ids)
    top, bottom, left, right = letterbox_crop(input_hw, orig_hw)
    return _nearest_to(ids[top:bottom, left:right], orig_hw)


def _linear_align_corners(
    in_size: int, out_size: int
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32], NDArray[np.float32]]:
    """PyTorch's `compute_indices_weights_linear` with `align_corners=True`, in float32."""
    scale = np.float32((in_size - 1) / (out_size - 1)) if out_size > 1 else np.float32(0)
    real = np.arange(out_size, dtype=np.float32) * scale
    i0 = real.astype(np.intp)  # non-negative: truncation is floor
    w1 = np.minimum(real - i0.astype(np.float32), np.float32(1))
    w0 = np.float32(1) - w1
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, w0, w1


def bilinear_align_corners(src: NDArray[np.float32], hw: tuple[int, int]) -> NDArray[np.float32]:
    """`F.interpolate(src[None, None], hw, mode="bilinear", align_corners=True)[0, 0]` in float32."""
    src = np.asarray(src, dtype=np.float32)
    h, w = src.shape
    if (h, w) == hw:
        return src
    x0, x1, wx0, wx1 = _linear_align_corners(w, hw[1])
    y0, y1, wy0, wy1 = _linear_align_corners(h, hw[0])
    narrow = src[:, x0] * wx0 + src[:, x1] * wx1  # (h, W): the width pass, as PyTorch's inner loop
    out = np.empty(hw, dtype=np.float32)
    for start in range(0, hw[0], BAND_ROWS):
        band = slice(start, start + BAND_ROWS)
        top = narrow[y0[band]]
        top *= wy0[band, None]
        bottom = narrow[y1[band]]
        bottom *= wy1[band, None]
        np.add(top, bottom, out=out[band])
    return out


def depth_to_original(
    depth: NDArray[np.float32], input_hw: tuple[int, int], orig_hw: tuple[int, int]
) -> NDArray[np.float32]:
    """A model depth map `(h, w)` -> the original image's `(H, W)` float32 depth, as
    `DepthPredictor` builds it: to the input size, then to the image size, both bilinear with
    `align_corners=True` (the input was stretched, so nothing is cropped)."""
    return bilinear_align_corners(bilinear_align_corners(depth, input_hw), orig_hw)


def class_counts(class_map: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Pixels per class id 0..255 (in bands: no int64 copy of the whole map)."""
    flat = class_map.reshape(-1)
    counts = np.zeros(256, dtype=np.int64)
    step = 1 << 20
    for start in range(0, flat.size, step):
        counts += np.bincount(flat[start : start + step], minlength=256)
    return counts


def pixel_ratios(class_map: NDArray[np.uint8], names: dict[int, str]) -> list[tuple[int, float]]:
    """`(class, count / total)` per class present, ascending, as `Results.summary()` lists them:
    ids that are not classes (the ignore label 255) are skipped; a single-class model's map is
    binary and only its foreground (1) is reported, as class 0."""
    counts = class_counts(class_map)
    total = class_map.size
    rows = []
    for class_id in np.flatnonzero(counts).tolist():
        if len(names) == 1:
            if class_id != 1:
                continue
            rows.append((0, int(counts[class_id]) / total))
        elif class_id in names:
            rows.append((class_id, int(counts[class_id]) / total))
    return rows
