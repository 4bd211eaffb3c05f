"""Letterbox: resize keeping the aspect ratio, pad with grey 114 (Ultralytics `LetterBox`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """Where the resized image sits inside the padded model input."""

    height: int  # model input height (padding included)
    width: int
    new_h: int  # resized content
    new_w: int
    top: int
    bottom: int
    left: int
    right: int


def round_to_stride(size: int, stride: int) -> int:
    """Ultralytics `check_imgsz`: round up to a multiple of the stride, at least one stride."""
    return max(math.ceil(size / stride) * stride, stride)


def letterbox_geometry(h0: int, w0: int, target: tuple[int, int], stride: int, auto: bool) -> Letterbox:
    """Compute the letterbox for an `h0 x w0` image into `target` (h, w).

    `auto=True` is the minimum rectangle (dynamic models): padding is reduced modulo the stride.
    Rounding follows Python's `round` (half to even) and the +-0.1 trick that puts an odd padding
    pixel at the bottom/right, exactly as Ultralytics does.
    """
    th, tw = target
    r = min(th / h0, tw / w0)
    new_w, new_h = max(round(w0 * r), 1), max(round(h0 * r), 1)
    dw, dh = tw - new_w, th - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    half_w, half_h = dw / 2, dh / 2
    top, bottom = round(half_h - 0.1), round(half_h + 0.1)
    left, right = round(half_w - 0.1), round(half_w + 0.1)
    return Letterbox(new_h + top + bottom, new_w + left + right, new_h, new_w, top, bottom, left, right)


def stretch_geometry(target: tuple[int, int]) -> Letterbox:
    """Ultralytics' `LetterBox(scale_fill=True)` (depth models): the whole input, no padding."""
    th, tw = target
    return Letterbox(th, tw, th, tw, 0, 0, 0, 0)


def apply_letterbox(image: NDArray[np.uint8], box: Letterbox) -> NDArray[np.uint8]:
    """Resize (bilinear, skipped when the size is unchanged) and pad a BGR image."""
    h0, w0 = image.shape[:2]
    resized: NDArray[np.integer[Any] | np.floating[Any]] = image
    if (w0, h0) != (box.new_w, box.new_h):
        resized = cv2.resize(image, (box.new_w, box.new_h), interpolation=cv2.INTER_LINEAR)
    out = cv2.copyMakeBorder(
        resized, box.top, box.bottom, box.left, box.right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    return np.asarray(out, dtype=np.uint8)


def to_model_input(image: NDArray[np.uint8]) -> NDArray[np.float32]:
    """BGR HWC uint8 -> RGB CHW float32 in [0, 1], the tensor YOLO models take."""
    chw = image[..., ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(chw, dtype=np.float32) / np.float32(255)


def letterboxed(
    image: NDArray[np.uint8],
    *,
    export_hw: tuple[int, int],
    stride: int,
    dynamic: bool,
    imgsz: int,
    stretch: bool = False,
) -> tuple[NDArray[np.uint8], Letterbox]:
    """The letterboxed BGR image `YOLO(export).predict(imgsz=imgsz)` builds for this model.

    A static model always takes its export size (the requested imgsz is ignored, as Ultralytics
    does); a dynamic one gets the minimum rectangle at the requested size. With `stretch` (depth
    models, whose predictor sets `scale_fill`) the image is resized to the whole input, square at
    the requested size when dynamic, without keeping its aspect ratio.
    """
    h0, w0 = image.shape[:2]
    if stretch:
        size = round_to_stride(imgsz, stride)
        box = stretch_geometry((size, size) if dynamic else export_hw)
    elif dynamic:
        size = round_to_stride(imgsz, stride)
        box = letterbox_geometry(h0, w0, (size, size), stride, auto=True)
    else:
        box = letterbox_geometry(h0, w0, export_hw, stride, auto=False)
    return apply_letterbox(image, box), box


def model_input(
    image: NDArray[np.uint8], *, export_hw: tuple[int, int], stride: int, dynamic: bool, imgsz: int
) -> tuple[NDArray[np.float32], Letterbox]:
    """The `(1, 3, H, W)` float32 tensor `YOLO(export).predict(imgsz=imgsz)` feeds this model."""
    image, box = letterboxed(image, export_hw=export_hw, stride=stride, dynamic=dynamic, imgsz=imgsz)
    return to_model_input(image)[None], box
