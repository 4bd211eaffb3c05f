"""Check the exported ONNX, run through Trident's own pipeline, against `YOLO(weights).predict()`.

This runs before anything is published: an export that does not reproduce Ultralytics' results
never reaches Triton. The pipeline is the serving code itself (`pipeline/`), with ONNX
Runtime standing in for Triton.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from core.modelspec import MAP_TASKS, ModelSpec
from exporter.errors import ExportError
from exporter.raw_parity import RawParity
from pipeline.contract import PredictOptions
from pipeline.decode import DECODERS
from pipeline.prepare import prepare
from pipeline.render_seed import seed_predictions
from pipeline.result import Result

CHECK_CONF = 0.01  # a trained model yields many boxes here; an untrained one none (the raw check covers it)
CHECK_IOU = 0.45
BAKED_CONF, BAKED_IOU = 0.25, 0.7  # what Ultralytics bakes into an nms=True graph by default
TOP_N = 50  # the highest-scored reference results that must all be reproduced
BOX_TOL_PX = 0.1
LABEL_AGREEMENT = 0.999  # semantic: share of pixels with the same class as Ultralytics'
DEPTH_RTOL = 1e-3  # depth: |ours - Ultralytics'| <= this x Ultralytics' depth, every pixel


@dataclass(frozen=True)
class ParityReport:
    reference: int
    ours: int
    matched: int
    raw_outputs_checked: int  # ONNX tensors compared with the PyTorch model's (exporter.raw_parity)
    max_abs_diff: float  # the largest difference among them
    raw_rtol: float  # the tolerance they met, as a fraction of each channel's range
    map_check: str = ""  # semantic / depth: how the served map compared with Ultralytics', in words
    ultralytics: Reference | None = None  # what it compared against (None for the dense tasks)

    def summary(self) -> str:
        """What was compared: with nothing found on the sample, only the raw outputs prove parity."""
        raw = (
            f"{self.raw_outputs_checked} raw outputs match PyTorch (max |diff| {self.max_abs_diff:.3g}, "
            f"within {self.raw_rtol:.3g} of each channel's range)"
        )
        if self.map_check:
            return f"{self.map_check}; {raw}"
        if self.reference == 0:
            return f"Ultralytics found no results on the sample to compare; {raw}"
        return f"top {self.matched} results reproduced ({self.ours} vs {self.reference}); {raw}"

    def figures(self) -> dict[str, object]:
        """The counts and the summary, as a job records them (without the reference's boxes)."""
        numbers = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ultralytics"}
        return {**numbers, "summary": self.summary()}


def read_sample(image_path: Path) -> NDArray[np.uint8]:
    """The gate's sample image as Ultralytics reads it (`cv2.imread`), or `ExportError`."""
    image: NDArray[np.uint8] | None = cv2.imread(str(image_path))  # type: ignore[assignment]
    if image is None:
        raise ExportError(f"cannot read the parity sample image {image_path}")
    return image


def pipeline_result(
    session: ort.InferenceSession, spec: ModelSpec, image: NDArray[np.uint8], params: PredictOptions
) -> Result:
    """The served `Result` for one image, with ONNX Runtime standing in for Triton."""
    prep = prepare(image, spec, spec.imgsz[0])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, {session.get_inputs()[0].name: prep.tensor}), strict=True))
    return DECODERS[spec.task](outputs, spec, params, prep)


def run_pipeline(
    session: ort.InferenceSession, spec: ModelSpec, image: NDArray[np.uint8], params: PredictOptions
) -> list[dict[str, Any]]:
    """The served predictions for one image, with ONNX Runtime standing in for Triton."""
    return seed_predictions(pipeline_result(session, spec, image, params), params)


def compare_maps(ours: Result, ref: Any, where: str) -> str:
    """A semantic or depth map against Ultralytics' `Results`; raise `ExportError` if they differ.
    Returns what was compared, in words."""
    if ours.semantic_mask is not None:
        theirs = ref.semantic_mask.data.numpy() if ref.semantic_mask is not None else None
        if theirs is None or theirs.shape != ours.semantic_mask.shape:
            raise ExportError(f"parity check failed on {where}: no class map of the image's size")
        same = float(np.count_nonzero(theirs == ours.semantic_mask)) / theirs.size
        if same < LABEL_AGREEMENT:
            raise ExportError(
                f"parity check failed on {where}: the class map matches Ultralytics' on {same:.3%} of "
                f"the pixels (at least {LABEL_AGREEMENT:.1%} required)"
            )
        return f"class map equal on {same:.3%} of {theirs.size} pixels"
    assert ours.depth is not None
    depth = ref.depth.data.numpy() if ref.depth is not None else None
    if depth is None or depth.shape != ours.depth.shape:
        raise ExportError(f"parity check failed on {where}: no depth map of the image's size")
    rel = float(np.max(np.abs(ours.depth - depth) / np.maximum(np.abs(depth), 1e-6)))
    if not rel <= DEPTH_RTOL:
        raise ExportError(
            f"parity check failed on {where}: the depth differs from Ultralytics' by up to {rel:.3g} "
            f"of the depth (at most {DEPTH_RTOL:g})"
        )
    return f"depth within {rel:.2g} relative on {depth.size} pixels"


def check_map_parity(onnx_path: Path, spec: ModelSpec, image_path: Path, raw: RawParity) -> ParityReport:
    """Dense tasks: the served map against `YOLO(<the ONNX>).predict()`'s. The weights are proven by
    the raw check (logits and class map, or depth, against the PyTorch model); this proves the
    decoding (crop, resize, interpolation), which `YOLO(weights)` cannot: on a `.pt` it takes the
    argmax after upsampling the logits (other pixels at class borders) and a rectangular input."""
    from ultralytics import YOLO  # type: ignore[attr-defined, unused-ignore]

    results: Any = YOLO(str(onnx_path), task=spec.task).predict(
        str(image_path), imgsz=list(spec.imgsz), verbose=False
    )
    ref = results[0]
    image = read_sample(image_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ours = pipeline_result(session, spec, image, PredictOptions())
    check = compare_maps(ours, ref, image_path.name)
    return ParityReport(1, 1, 1, raw.outputs_checked, raw.max_abs_diff, raw.rtol, check)


def _iou(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9))


def _bounds(prediction: dict[str, Any]) -> list[float]:
    """Axis-aligned bounds of a prediction's box (OBB: of its four corners)."""
    box = prediction["box"]
    xs = [v for k, v in box.items() if k.startswith("x")]
    ys = [v for k, v in box.items() if k.startswith("y")]
    return [min(xs), min(ys), max(xs), max(ys)]


def _reference(result: Any, task: str) -> tuple[NDArray[np.float64], NDArray[np.float64], list[int]]:
    if task == "classify":
        top = list(result.probs.top5)
        return np.zeros((len(top), 4)), np.asarray(result.probs.data.numpy()[top], np.float64), top
    boxes = result.obb if task == "obb" else result.boxes
    return (
        boxes.xyxy.numpy().astype(np.float64),
        boxes.conf.numpy().astype(np.float64),
        [int(c) for c in boxes.cls.tolist()],
    )


@dataclass(frozen=True)
class Reference:
    """What `YOLO(weights).predict()` found on the sample, as plain numbers: computed where the
    checkpoint may be loaded (the worker's sandbox), compared wherever the ONNX is."""

    xyxy: list[list[float]]
    conf: list[float]
    cls: list[int]

    @classmethod
    def parse(cls, value: object) -> Reference:
        """From JSON (untrusted: typed and sized here, `ExportError` otherwise)."""
        try:
            assert isinstance(value, dict)
            xyxy = [[float(v) for v in box] for box in value["xyxy"]]
            conf, ids = [float(v) for v in value["conf"]], [int(v) for v in value["cls"]]
            assert all(len(b) == 4 for b in xyxy) and len(xyxy) == len(conf) == len(ids) <= 100_000
        except (AssertionError, KeyError, TypeError, ValueError):
            raise ExportError("the parity reference is malformed") from None
        return cls(xyxy, conf, ids)


def _thresholds(nms: bool | None) -> tuple[float, float]:
    return (BAKED_CONF, BAKED_IOU) if nms else (CHECK_CONF, CHECK_IOU)


def reference_results(weights: Path, spec: ModelSpec, image_path: Path, nms: bool | None) -> Reference:
    """`YOLO(weights).predict()` on the sample at the gate's thresholds (a freshly loaded model:
    `export()` leaves its model object altered; after an `nms=False` export its predictions differ
    from the checkpoint's)."""
    from ultralytics import YOLO  # type: ignore[attr-defined, unused-ignore]

    conf, iou = _thresholds(nms)
    extra: dict[str, Any] = {} if spec.task == "classify" else {"rect": spec.dynamic, "nms": nms}
    results: Any = YOLO(str(weights)).predict(
        str(image_path), conf=conf, iou=iou, imgsz=list(spec.imgsz), verbose=False, **extra
    )
    xyxy, scores, ids = _reference(results[0], spec.task)
    return Reference(xyxy.tolist(), scores.tolist(), ids)


def compare_results(
    onnx_path: Path, spec: ModelSpec, image_path: Path, ref: Reference, nms: bool | None, raw: RawParity
) -> ParityReport:
    """The ONNX through Trident's pipeline against the reference; raise `ExportError` naming the
    difference. Needs no checkpoint: the worker runs it outside its sandbox."""
    image = read_sample(image_path)
    conf, iou = _thresholds(nms)
    ref_xyxy = np.asarray(ref.xyxy, np.float64).reshape(-1, 4)
    ref_conf, ref_cls = np.asarray(ref.conf, np.float64), ref.cls
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ours = run_pipeline(session, spec, image, PredictOptions(conf=conf, iou=iou))
    our_conf = np.array([p["confidence"] for p in ours], dtype=np.float64)
    our_cls = np.array([p["class_id"] for p in ours])
    top = np.argsort(-ref_conf, kind="stable")[:TOP_N]
    if spec.task == "classify":
        same = [int(c) for c in our_cls] == ref_cls and np.allclose(our_conf, ref_conf, atol=1e-3)
        matched = len(top) if same else 0
    else:
        our_xyxy = np.array([_bounds(p) for p in ours], dtype=np.float64).reshape(-1, 4)
        matched = 0
        if len(top) and len(ours):
            ious = _iou(ref_xyxy[top], our_xyxy)
            for row, k in enumerate(top):
                # a box clipped to zero area has no IoU: compare its corners instead
                near = np.abs(our_xyxy - ref_xyxy[k]).max(axis=1) <= BOX_TOL_PX
                same_box = (ious[row] >= 0.99) | near
                ok = same_box & (our_cls == ref_cls[k]) & (np.abs(our_conf - ref_conf[k]) <= 1e-3)
                matched += bool(ok.any())
    report = ParityReport(
        len(ref_conf), len(ours), matched, raw.outputs_checked, raw.max_abs_diff, raw.rtol, ultralytics=ref
    )
    if matched < len(top) or abs(report.ours - report.reference) > max(2, report.reference // 20):
        raise ExportError(
            f"parity check failed on {image_path.name}: Ultralytics found {report.reference} results, "
            f"the exported model {report.ours}; {matched} of the top {len(top)} reproduced "
            "(IoU >= 0.99 or corners within 0.1 px, same class, confidence within 1e-3)"
        )
    return report


def check_parity(
    weights: Path, onnx_path: Path, spec: ModelSpec, image_path: Path, nms: bool | None
) -> ParityReport:
    """Compare on one image; raise `ExportError` naming the difference: the raw outputs against
    the PyTorch model, then the served results (maps for dense tasks) against Ultralytics'."""
    from exporter.raw_parity import check_raw_outputs

    image = read_sample(image_path)
    # first, and whatever Ultralytics finds: the one comparison that cannot come out empty
    raw = check_raw_outputs(weights, onnx_path, spec, prepare(image, spec, spec.imgsz[0]).tensor, nms)
    if spec.task in MAP_TASKS:
        return check_map_parity(onnx_path, spec, image_path, raw)
    reference = reference_results(weights, spec, image_path, nms)
    return compare_results(onnx_path, spec, image_path, reference, nms, raw)
