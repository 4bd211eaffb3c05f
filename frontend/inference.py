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
from frontend.errors import ServingError
from postprocess.classify import classify_crop, top_classes
from postprocess.detect import select_rows, to_detections
from postprocess.letterbox import letterboxed, round_to_stride, to_model_input
from postprocess.masks import decode_masks
from postprocess.obb import select_obb_rows, to_oriented
from postprocess.pose import decode_keypoints
from trident.modelspec import ModelSpec

DECIMALS = 5  # as Ultralytics' Results.summary()


@dataclass(frozen=True)
class Params:
    conf: float = 0.25
    iou: float = 0.45
    imgsz: int = 640


@dataclass(frozen=True)
class Prepared:
    tensor: NDArray[np.float32] | NDArray[np.uint8]  # (1, 3, H, W) float32, or (1, H, W, 3) BGR uint8
    input_hw: tuple[int, int]
    orig_hw: tuple[int, int]


def prepare(image: NDArray[np.uint8], spec: ModelSpec, imgsz: int, u8: bool = False) -> Prepared:
    """The model input Ultralytics builds for this model: a letterbox, or for classification a
    Pillow resize and centre crop (static models use their export size, dynamic ones `imgsz`).

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
            image, export_hw=spec.imgsz, stride=spec.stride, dynamic=spec.dynamic, imgsz=imgsz
        )
        input_hw = (box.height, box.width)
    tensor = np.ascontiguousarray(model_image)[None] if u8 else to_model_input(model_image)[None]
    return Prepared(tensor, input_hw, orig_hw)


def _r(value: float) -> float:
    return round(float(value), DECIMALS)


def _single(outputs: dict[str, NDArray[Any]], name: str, ndim: int) -> NDArray[np.float32]:
    """One image's tensor (batch axis dropped), checked: a malformed output is a server error."""
    array = outputs.get(name)
    if array is None or array.ndim != ndim or array.shape[0] != 1:
        shape = None if array is None else array.shape
        raise ServingError(f"the model returned a malformed {name!r} tensor (shape {shape})")
    return np.asarray(array[0], dtype=np.float32)


def _points(points: NDArray[np.float32]) -> list[list[float]]:
    """An `(n, 2)` array as `[[x, y], ...]`, rounded in one vectorised step (polygons are long)."""
    rounded: list[list[float]] = np.round(points.astype(np.float64), DECIMALS).tolist()
    return rounded


def _base(spec: ModelSpec, cls: int, conf: float) -> dict[str, Any]:
    return {"class": spec.names.get(cls, str(cls)), "class_id": cls, "confidence": _r(conf)}


def _box(xyxy: NDArray[np.float32]) -> dict[str, float]:
    return {"x1": _r(xyxy[0]), "y1": _r(xyxy[1]), "x2": _r(xyxy[2]), "y2": _r(xyxy[3])}


def _rows(outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params) -> NDArray[np.float32]:
    output0 = _single(outputs, "output0", 3)
    return select_rows(output0, nc=len(spec.names), end2end=spec.end2end, conf=params.conf, iou=params.iou)


def decode_detect(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    det = to_detections(_rows(outputs, spec, params), prep.input_hw, prep.orig_hw)
    return [
        {**_base(spec, int(c), s), "box": _box(b)}
        for b, s, c in zip(det.xyxy, det.conf, det.cls, strict=True)
    ]


def decode_segment(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    rows = _rows(outputs, spec, params)
    keep, polygons = decode_masks(rows, _single(outputs, "output1", 4), prep.input_hw, prep.orig_hw)
    det = to_detections(rows[keep], prep.input_hw, prep.orig_hw)
    return [
        {**_base(spec, int(c), s), "box": _box(b), "segments": _points(poly)}
        for b, s, c, poly in zip(det.xyxy, det.conf, det.cls, polygons, strict=True)
    ]


def decode_pose(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    if spec.kpt_shape is None:
        raise ServingError("the pose model has no kpt_shape in its metadata")
    det, kpts = decode_keypoints(_rows(outputs, spec, params), spec.kpt_shape, prep.input_hw, prep.orig_hw)

    def point(k: NDArray[np.float32]) -> dict[str, float]:
        return {"x": _r(k[0]), "y": _r(k[1]), **({"conf": _r(k[2])} if len(k) > 2 else {})}

    return [
        {**_base(spec, int(c), s), "box": _box(b), "keypoints": [point(k) for k in person]}
        for b, s, c, person in zip(det.xyxy, det.conf, det.cls, kpts, strict=True)
    ]


def decode_obb(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    output0 = _single(outputs, "output0", 3)
    rows = select_obb_rows(
        output0, nc=len(spec.names), end2end=spec.end2end, conf=params.conf, iou=params.iou
    )
    obb = to_oriented(rows, prep.input_hw, prep.orig_hw)
    predictions = []
    for xywhr, corners, s, c in zip(obb.xywhr, obb.corners(), obb.conf, obb.cls, strict=True):
        box = {f"{axis}{i + 1}": _r(corners[i][j]) for i in range(4) for j, axis in enumerate("xy")}
        rotated = dict(zip(("cx", "cy", "w", "h", "angle"), (_r(v) for v in xywhr), strict=True))
        predictions.append({**_base(spec, int(c), s), "box": box, "obb": rotated})
    return predictions


def decode_classify(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    indices, probs = top_classes(_single(outputs, "output0", 2))
    return [_base(spec, int(i), p) for i, p in zip(indices, probs, strict=True)]


Decoder = Callable[[dict[str, NDArray[Any]], ModelSpec, Params, Prepared], list[dict[str, Any]]]
DECODERS: dict[str, Decoder] = {
    "detect": decode_detect,
    "segment": decode_segment,
    "pose": decode_pose,
    "obb": decode_obb,
    "classify": decode_classify,
}


def decoder_for(model: ServedModel) -> Decoder:
    decoder = DECODERS.get(model.spec.task)
    if decoder is None:
        raise ServingError(f"task {model.spec.task!r} is not served")
    return decoder
