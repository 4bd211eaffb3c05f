"""Check the exported ONNX, run through Trident's own pipeline, against `YOLO(weights).predict()`.

This runs before anything is published: an export that does not reproduce Ultralytics' boxes
never reaches Triton.
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
from postprocess.detect import Detections, decode_detections
from postprocess.letterbox import model_input
from trident.modelspec import ModelSpec

CHECK_CONF = 0.01  # low enough that even an untrained model yields boxes to compare
CHECK_IOU = 0.45
TOP_N = 50  # the highest-scored reference boxes that must all be reproduced
BOX_TOL_PX = 0.1


@dataclass(frozen=True)
class ParityReport:
    reference: int
    ours: int
    matched: int


def run_pipeline(
    session: ort.InferenceSession, spec: ModelSpec, image: NDArray[np.uint8], conf: float, iou: float
) -> Detections:
    """What the frontend does for one image, with ONNX Runtime standing in for Triton."""
    x, box = model_input(
        image, export_hw=spec.imgsz, stride=spec.stride, dynamic=spec.dynamic, imgsz=spec.imgsz[0]
    )
    output0 = session.run(None, {session.get_inputs()[0].name: x})[0][0]
    return decode_detections(
        output0,
        nc=len(spec.names),
        end2end=spec.end2end,
        conf=conf,
        iou=iou,
        input_hw=(box.height, box.width),
        orig_hw=(image.shape[0], image.shape[1]),
    )


def _iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float64]:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9))


def check_parity(model: Any, onnx_path: Path, spec: ModelSpec, image_path: Path) -> ParityReport:
    """Compare on one image; raise `ExportError` naming the first difference."""
    image: NDArray[np.uint8] | None = cv2.imread(str(image_path))  # type: ignore[assignment]
    if image is None:
        raise ExportError(f"cannot read the parity sample image {image_path}")
    ref = model.predict(
        str(image_path),
        conf=CHECK_CONF,
        iou=CHECK_IOU,
        imgsz=list(spec.imgsz),
        rect=spec.dynamic,
        verbose=False,
    )[0].boxes
    ref_xyxy, ref_conf = ref.xyxy.numpy(), ref.conf.numpy()
    ref_cls = ref.cls.numpy().astype(np.int64)
    ours = run_pipeline(
        ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]),
        spec,
        image,
        CHECK_CONF,
        CHECK_IOU,
    )
    top = np.argsort(-ref_conf, kind="stable")[:TOP_N]
    matched = 0
    if len(top) and len(ours):
        ious = _iou(ref_xyxy[top], ours.xyxy)
        for row, k in enumerate(top):
            # a box clipped to zero area has no IoU: compare its corners instead
            near = np.abs(ours.xyxy - ref_xyxy[k]).max(axis=1) <= BOX_TOL_PX
            same = (ious[row] >= 0.99) | near
            ok = same & (ours.cls == ref_cls[k]) & (np.abs(ours.conf - ref_conf[k]) <= 1e-3)
            matched += bool(ok.any())
    report = ParityReport(reference=len(ref_conf), ours=len(ours), matched=matched)
    if matched < len(top) or abs(report.ours - report.reference) > max(2, report.reference // 20):
        raise ExportError(
            f"parity check failed on {image_path.name}: Ultralytics found {report.reference} boxes, "
            f"the exported model {report.ours}; {matched} of the top {len(top)} reproduced "
            "(IoU >= 0.99 or corners within 0.1 px, same class, confidence within 1e-3)"
        )
    return report
