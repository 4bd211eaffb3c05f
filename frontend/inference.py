"""One prediction: letterbox -> Triton -> decode -> the Platform's JSON, independent of HTTP.

Each task is a decoder from the model's outputs to prediction dicts; the request path is the same
for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from frontend.catalog import ServedModel
from frontend.errors import InvalidRequest, ServingError
from postprocess.detect import decode_detections
from postprocess.letterbox import model_input
from trident.modelspec import ModelSpec

DECIMALS = 5  # as Ultralytics' Results.summary()


@dataclass(frozen=True)
class Params:
    conf: float = 0.25
    iou: float = 0.45
    imgsz: int = 640


@dataclass(frozen=True)
class Prepared:
    tensor: NDArray[np.float32]  # (1, 3, H, W)
    input_hw: tuple[int, int]
    orig_hw: tuple[int, int]


def prepare(image: NDArray[np.uint8], spec: ModelSpec, imgsz: int) -> Prepared:
    tensor, box = model_input(
        image, export_hw=spec.imgsz, stride=spec.stride, dynamic=spec.dynamic, imgsz=imgsz
    )
    return Prepared(tensor, (box.height, box.width), (image.shape[0], image.shape[1]))


def _r(value: float) -> float:
    return round(float(value), DECIMALS)


def decode_detect(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    output0 = outputs["output0"]
    if output0.ndim != 3 or output0.shape[0] != 1:
        raise ServingError(f"unexpected output0 shape {output0.shape}")
    det = decode_detections(
        output0[0].astype(np.float32, copy=False),
        nc=len(spec.names),
        end2end=spec.end2end,
        conf=params.conf,
        iou=params.iou,
        input_hw=prep.input_hw,
        orig_hw=prep.orig_hw,
    )
    return [
        {
            "class": spec.names.get(int(c), str(int(c))),
            "class_id": int(c),
            "confidence": _r(s),
            "box": {"x1": _r(b[0]), "y1": _r(b[1]), "x2": _r(b[2]), "y2": _r(b[3])},
        }
        for b, s, c in zip(det.xyxy, det.conf, det.cls, strict=True)
    ]


Decoder = Callable[[dict[str, NDArray[Any]], ModelSpec, Params, Prepared], list[dict[str, Any]]]
DECODERS: dict[str, Decoder] = {"detect": decode_detect}


def decoder_for(model: ServedModel) -> Decoder:
    decoder = DECODERS.get(model.spec.task)
    if decoder is None:
        raise InvalidRequest(f"task {model.spec.task!r} is not served yet")
    return decoder
