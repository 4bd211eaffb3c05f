"""Check the exported ONNX, run through Trident's own pipeline, against `YOLO(weights).predict()`.

This runs before anything is published: an export that does not reproduce Ultralytics' results
never reaches Triton. The pipeline is the serving code itself (`pipeline/`), with ONNX
Runtime standing in for Triton.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from exporter.errors import ExportError
from pipeline.contract import PredictOptions
from pipeline.decode import DECODERS
from pipeline.prepare import prepare
from pipeline.render_seed import seed_predictions
from trident.modelspec import ModelSpec

CHECK_CONF = 0.01  # a trained model yields many boxes here; an untrained one none (the raw check covers it)
CHECK_IOU = 0.45
BAKED_CONF, BAKED_IOU = 0.25, 0.7  # what Ultralytics bakes into an nms=True graph by default
TOP_N = 50  # the highest-scored reference results that must all be reproduced
BOX_TOL_PX = 0.1


@dataclass(frozen=True)
class ParityReport:
    reference: int
    ours: int
    matched: int
    raw_outputs_checked: int  # ONNX tensors compared with the PyTorch model's (exporter.raw_parity)
    max_abs_diff: float  # the largest difference among them
    raw_rtol: float  # the tolerance they met, as a fraction of each channel's range

    def summary(self) -> str:
        """What was compared: with nothing found on the sample, only the raw outputs prove parity."""
        raw = (
            f"{self.raw_outputs_checked} raw outputs match PyTorch (max |diff| {self.max_abs_diff:.3g}, "
            f"within {self.raw_rtol:.3g} of each channel's range)"
        )
        if self.reference == 0:
            return f"Ultralytics found no results on the sample to compare; {raw}"
        return f"top {self.matched} results reproduced ({self.ours} vs {self.reference}); {raw}"


def run_pipeline(
    session: ort.InferenceSession, spec: ModelSpec, image: NDArray[np.uint8], params: PredictOptions
) -> list[dict[str, Any]]:
    """The served predictions for one image, with ONNX Runtime standing in for Triton."""
    prep = prepare(image, spec, spec.imgsz[0])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, {session.get_inputs()[0].name: prep.tensor}), strict=True))
    return seed_predictions(DECODERS[spec.task](outputs, spec, params, prep), params)


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


def check_parity(
    weights: Path, onnx_path: Path, spec: ModelSpec, image_path: Path, nms: bool | None
) -> ParityReport:
    """Compare on one image; raise `ExportError` naming the difference.

    The reference is a freshly loaded model: `export()` leaves its model object altered (after an
    `nms=False` export its predictions differ from the checkpoint's).
    """
    from ultralytics import YOLO  # type: ignore[attr-defined]

    from exporter.raw_parity import check_raw_outputs

    model = YOLO(str(weights))
    image: NDArray[np.uint8] | None = cv2.imread(str(image_path))  # type: ignore[assignment]
    if image is None:
        raise ExportError(f"cannot read the parity sample image {image_path}")
    # first, and whatever Ultralytics finds: the one comparison that cannot come out empty
    raw = check_raw_outputs(weights, onnx_path, spec, prepare(image, spec, spec.imgsz[0]).tensor, nms)
    conf, iou = (BAKED_CONF, BAKED_IOU) if nms else (CHECK_CONF, CHECK_IOU)
    extra: dict[str, Any] = {} if spec.task == "classify" else {"rect": spec.dynamic, "nms": nms}
    results: Any = model.predict(
        str(image_path), conf=conf, iou=iou, imgsz=list(spec.imgsz), verbose=False, **extra
    )
    result = results[0]
    ref_xyxy, ref_conf, ref_cls = _reference(result, spec.task)
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
    report = ParityReport(len(ref_conf), len(ours), matched, raw.outputs_checked, raw.max_abs_diff, raw.rtol)
    if matched < len(top) or abs(report.ours - report.reference) > max(2, report.reference // 20):
        raise ExportError(
            f"parity check failed on {image_path.name}: Ultralytics found {report.reference} results, "
            f"the exported model {report.ours}; {matched} of the top {len(top)} reproduced "
            "(IoU >= 0.99 or corners within 0.1 px, same class, confidence within 1e-3)"
        )
    return report
