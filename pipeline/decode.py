"""Task decoders: a model's output tensors -> one `Result` (NumPy only, no rounding, no JSON)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.modelspec import ModelSpec
from pipeline.contract import PredictOptions
from pipeline.prepare import Prepared
from pipeline.result import Result
from postprocess.classify import top_classes
from postprocess.detect import select_rows, to_detections
from postprocess.maps import depth_to_original, semantic_to_original
from postprocess.masks import decode_masks
from postprocess.obb import select_obb_rows, to_oriented
from postprocess.pose import decode_keypoints

Outputs = dict[str, NDArray[Any]]


class ModelOutputError(Exception):
    """The model answered with tensors its task cannot be decoded from (a server-side fault)."""


def _single(outputs: Outputs, name: str, ndim: int) -> NDArray[np.float32]:
    """One image's tensor (batch axis dropped), checked: a malformed output is the model's fault."""
    array = outputs.get(name)
    if not isinstance(array, np.ndarray) or array.ndim != ndim or array.shape[0] != 1:
        shape = getattr(array, "shape", None)
        raise ModelOutputError(f"the model returned a malformed {name!r} tensor (shape {shape})")
    return np.asarray(array[0], dtype=np.float32)


def _rows(outputs: Outputs, spec: ModelSpec, options: PredictOptions) -> NDArray[np.float32]:
    output0 = _single(outputs, "output0", 3)
    return select_rows(output0, nc=len(spec.names), end2end=spec.end2end, conf=options.conf, iou=options.iou)


def decode_detect(outputs: Outputs, spec: ModelSpec, options: PredictOptions, prep: Prepared) -> Result:
    det = to_detections(_rows(outputs, spec, options), prep.input_hw, prep.orig_hw)
    return Result(spec.task, spec.names, prep.orig_hw, det.cls, det.conf, xyxy=det.xyxy)


def decode_segment(outputs: Outputs, spec: ModelSpec, options: PredictOptions, prep: Prepared) -> Result:
    rows = _rows(outputs, spec, options)
    keep, polygons = decode_masks(rows, _single(outputs, "output1", 4), prep.input_hw, prep.orig_hw)
    det = to_detections(rows[keep], prep.input_hw, prep.orig_hw)
    return Result(spec.task, spec.names, prep.orig_hw, det.cls, det.conf, xyxy=det.xyxy, polygons=polygons)


def decode_pose(outputs: Outputs, spec: ModelSpec, options: PredictOptions, prep: Prepared) -> Result:
    if spec.kpt_shape is None:
        raise ModelOutputError("the pose model has no kpt_shape in its metadata")
    det, kpts = decode_keypoints(_rows(outputs, spec, options), spec.kpt_shape, prep.input_hw, prep.orig_hw)
    return Result(spec.task, spec.names, prep.orig_hw, det.cls, det.conf, xyxy=det.xyxy, keypoints=kpts)


def decode_obb(outputs: Outputs, spec: ModelSpec, options: PredictOptions, prep: Prepared) -> Result:
    output0 = _single(outputs, "output0", 3)
    rows = select_obb_rows(
        output0, nc=len(spec.names), end2end=spec.end2end, conf=options.conf, iou=options.iou
    )
    obb = to_oriented(rows, prep.input_hw, prep.orig_hw)
    return Result(
        spec.task, spec.names, prep.orig_hw, obb.cls, obb.conf, xywhr=obb.xywhr, corners=obb.corners()
    )


def decode_classify(outputs: Outputs, spec: ModelSpec, options: PredictOptions, prep: Prepared) -> Result:
    indices, probs = top_classes(_single(outputs, "output0", 2))
    return Result(spec.task, spec.names, prep.orig_hw, indices.astype(np.int64), probs)


def _map(outputs: Outputs, ndim: int) -> NDArray[Any]:
    """`output0` of a dense task, batch axis dropped (its dtype kept: class ids or metres)."""
    array = outputs.get("output0")
    if not isinstance(array, np.ndarray) or array.ndim != ndim or array.shape[0] != 1:
        shape = getattr(array, "shape", None)
        raise ModelOutputError(f"the model returned a malformed 'output0' tensor (shape {shape})")
    single: NDArray[Any] = array[0]
    return single


def _no_rows(spec: ModelSpec, prep: Prepared, **maps: Any) -> Result:
    cls, conf = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return Result(spec.task, spec.names, prep.orig_hw, cls, conf, **maps)


def decode_semantic(outputs: Outputs, spec: ModelSpec, options: PredictOptions, prep: Prepared) -> Result:
    """The in-graph class map `(1, h, w)` -> the original image's uint8 class map."""
    class_map = semantic_to_original(_map(outputs, 3), prep.input_hw, prep.orig_hw)
    return _no_rows(spec, prep, semantic_mask=class_map)


def decode_depth(outputs: Outputs, spec: ModelSpec, options: PredictOptions, prep: Prepared) -> Result:
    """The depth map `(1, 1, h, w)` (or `(1, h, w)`) -> the original image's float32 depth."""
    output0 = outputs.get("output0")
    depth = _map(outputs, 4)[0] if getattr(output0, "ndim", 0) == 4 else _map(outputs, 3)
    return _no_rows(spec, prep, depth=depth_to_original(depth, prep.input_hw, prep.orig_hw))


Decoder = Callable[[Outputs, ModelSpec, PredictOptions, Prepared], Result]
DECODERS: dict[str, Decoder] = {
    "detect": decode_detect,
    "segment": decode_segment,
    "pose": decode_pose,
    "obb": decode_obb,
    "classify": decode_classify,
    "semantic": decode_semantic,
    "depth": decode_depth,
}


def decoder_for(spec: ModelSpec) -> Decoder:
    decoder = DECODERS.get(spec.task)
    if decoder is None:
        raise ModelOutputError(f"task {spec.task!r} is not served")
    return decoder
