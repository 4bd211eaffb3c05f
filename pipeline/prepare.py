"""The model input Ultralytics builds for an image: a letterbox, or a centre crop for classify."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.modelspec import ModelSpec
from postprocess.classify import classify_crop
from postprocess.letterbox import letterboxed, round_to_stride, to_model_input


@dataclass(frozen=True)
class Prepared:
    tensor: NDArray[np.float32] | NDArray[np.uint8]  # (1, 3, H, W) float32, or (1, H, W, 3) BGR uint8
    input_hw: tuple[int, int]
    orig_hw: tuple[int, int]


def prepare(image: NDArray[np.uint8], spec: ModelSpec, imgsz: int, u8: bool = False) -> Prepared:
    """A letterbox, for depth a stretch, or for classification a Pillow resize and centre crop
    (static models use their export size, dynamic ones `imgsz`).

    With `u8` the image is handed over as it is, `(1, H, W, 3)` BGR uint8, and the model
    normalises it (a quarter of the bytes, and no transpose or division here); otherwise the
    float32 RGB tensor is built here.
    """
    orig_hw = (image.shape[0], image.shape[1])
    if spec.task == "classify":
        size = spec.imgsz if not spec.dynamic else (round_to_stride(imgsz, spec.stride),) * 2
        model_image = classify_crop(image, size)
        input_hw = (size[0], size[1])
    else:
        model_image, box = letterboxed(
            image,
            export_hw=spec.imgsz,
            stride=spec.stride,
            dynamic=spec.dynamic,
            imgsz=imgsz,
            stretch=spec.task == "depth",
        )
        input_hw = (box.height, box.width)
    tensor = np.ascontiguousarray(model_image)[None] if u8 else to_model_input(model_image)[None]
    return Prepared(tensor, input_hw, orig_hw)
