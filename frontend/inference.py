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
from postprocess.rounding import round_like_python
from trident.modelspec import ModelSpec

DECIMALS = 5  # as Ultralytics' Results.summary()
OBB_KEYS = ("cx", "cy", "w", "h", "angle")


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


def _rounded(array: NDArray[Any]) -> list[Any]:
    """`array` as (nested) lists of floats rounded as `Results.summary()` rounds boxes and scores:
    `round(x, 5)`, bit for bit, but vectorised (300 boxes are 1,500 numbers)."""
    rounded: list[Any] = round_like_python(array, DECIMALS).tolist()
    return rounded


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


def _bases(spec: ModelSpec, cls: NDArray[Any], conf: NDArray[np.float32]) -> list[dict[str, Any]]:
    """Class name, id and confidence of each prediction."""
    names = spec.names
    return [
        {"class": names.get(c, str(c)), "class_id": c, "confidence": s}
        for c, s in zip(cls.astype(np.int64).tolist(), _rounded(conf), strict=True)
    ]


def _boxes(xyxy: NDArray[np.float32]) -> list[dict[str, float]]:
    return [{"x1": x1, "y1": y1, "x2": x2, "y2": y2} for x1, y1, x2, y2 in _rounded(xyxy.reshape(-1, 4))]


def _rows(outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params) -> NDArray[np.float32]:
    output0 = _single(outputs, "output0", 3)
    return select_rows(output0, nc=len(spec.names), end2end=spec.end2end, conf=params.conf, iou=params.iou)


def decode_detect(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    det = to_detections(_rows(outputs, spec, params), prep.input_hw, prep.orig_hw)
    return [
        {**base, "box": box}
        for base, box in zip(_bases(spec, det.cls, det.conf), _boxes(det.xyxy), strict=True)
    ]


def decode_segment(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    rows = _rows(outputs, spec, params)
    keep, polygons = decode_masks(rows, _single(outputs, "output1", 4), prep.input_hw, prep.orig_hw)
    det = to_detections(rows[keep], prep.input_hw, prep.orig_hw)
    return [
        {**base, "box": box, "segments": _points(poly)}
        for base, box, poly in zip(_bases(spec, det.cls, det.conf), _boxes(det.xyxy), polygons, strict=True)
    ]


def decode_pose(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    if spec.kpt_shape is None:
        raise ServingError("the pose model has no kpt_shape in its metadata")
    det, kpts = decode_keypoints(_rows(outputs, spec, params), spec.kpt_shape, prep.input_hw, prep.orig_hw)
    keys = ("x", "y", "conf")[: spec.kpt_shape[1]]  # visibility only when the model has it
    people = _rounded(kpts)
    return [
        {**base, "box": box, "keypoints": [dict(zip(keys, k, strict=True)) for k in person]}
        for base, box, person in zip(_bases(spec, det.cls, det.conf), _boxes(det.xyxy), people, strict=True)
    ]


def decode_obb(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    output0 = _single(outputs, "output0", 3)
    rows = select_obb_rows(
        output0, nc=len(spec.names), end2end=spec.end2end, conf=params.conf, iou=params.iou
    )
    obb = to_oriented(rows, prep.input_hw, prep.orig_hw)
    corner_keys = ("x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4")
    return [
        {
            **base,
            "box": dict(zip(corner_keys, corners, strict=True)),
            "obb": dict(zip(OBB_KEYS, xywhr, strict=True)),
        }
        for base, corners, xywhr in zip(
            _bases(spec, obb.cls, obb.conf),
            _rounded(obb.corners().reshape(-1, 8)),
            _rounded(obb.xywhr.reshape(-1, 5)),
            strict=True,
        )
    ]


def decode_classify(
    outputs: dict[str, NDArray[Any]], spec: ModelSpec, params: Params, prep: Prepared
) -> list[dict[str, Any]]:
    indices, probs = top_classes(_single(outputs, "output0", 2))
    return _bases(spec, indices, probs)


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
