"""Classification: Ultralytics' preprocessing (Pillow resize of the short side, centre crop) and top-5.

The resize must be Pillow's antialiased bilinear: OpenCV's INTER_LINEAR has no antialiasing and
gives other pixels when shrinking.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from postprocess.letterbox import to_model_input

TOP_K = 5


def classify_input(image: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.float32]:
    """BGR uint8 -> `(1, 3, h, w)` float32 RGB in [0, 1], as `ClassificationPredictor` builds it."""
    return to_model_input(classify_crop(image, size))[None]


def classify_crop(image: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    """BGR uint8 -> the resized, centre-cropped BGR uint8 `(h, w, 3)` image the model sees.

    Resize runs on the BGR array wrapped as a PIL image (channel-agnostic), like Ultralytics.
    """
    th, tw = size
    h, w = image.shape[:2]
    pil = Image.fromarray(image)
    if th == tw:  # torchvision Resize(int): short side -> size, long side truncated
        if h <= w:
            new_h, new_w = th, int(th * w / h)
        else:
            new_h, new_w = int(tw * h / w), tw
    else:
        new_h, new_w = th, tw
    if (new_w, new_h) != (w, h):
        pil = pil.resize((new_w, new_h), Image.Resampling.BILINEAR)
    top, left = round((new_h - th) / 2.0), round((new_w - tw) / 2.0)
    crop: NDArray[np.uint8] = np.asarray(pil)[top : top + th, left : left + tw]
    return crop


def top_classes(probs: NDArray[np.float32], k: int = TOP_K) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Indices and probabilities of the `k` most likely classes (the output is already softmax)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return order, probs[order].astype(np.float32)
