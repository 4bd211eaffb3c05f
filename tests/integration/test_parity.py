"""The API returns what `YOLO(<exported onnx>).predict()` returns, and matches the .pt itself.

Models: YAML-built YOLO11n and YOLO26n (COCO names), made to score hundreds of boxes (see
tests/helpers/models.py). Images: bus.jpg, zidane.jpg and three generated odd sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ultralytics import YOLO

from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration
MODELS = ["test/coco/yolo11n", "test/coco/yolo26n"]
CONF, IOU = 0.001, 0.45
STRONG, BAND = 0.06, 0.002  # .pt parity: see test_api_and_pytorch_boxes_match_both_ways


def api_arrays(body: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    preds = body["predictions"]
    boxes = np.array([[p["box"][k] for k in ("x1", "y1", "x2", "y2")] for p in preds], dtype=np.float64)
    conf = np.array([p["confidence"] for p in preds], dtype=np.float64)
    return boxes.reshape(-1, 4), conf, [p["class"] for p in preds]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], 1), np.prod(b[:, 2:] - b[:, :2], 1)
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter + 1e-12))


@pytest.mark.parametrize("slug", MODELS)
def test_api_matches_the_exported_onnx_exactly(stack: Stack, slug: str, all_images: list[Path]) -> None:
    onnx_model = YOLO(str(stack.exported[slug].path / "model.onnx"), task="detect")
    for image in all_images:
        response = stack.predict(slug, image, conf=CONF, iou=IOU)
        assert response.status_code == 200, response.text
        body = response.json()
        boxes, conf, names = api_arrays(body)
        ref = onnx_model.predict(str(image), conf=CONF, iou=IOU, verbose=False)[0]
        assert body["image"] == {"width": ref.orig_shape[1], "height": ref.orig_shape[0]}
        assert len(conf) == len(ref.boxes), image.name
        assert len(conf) >= 100 or image.name.startswith("odd_12x"), (
            f"too few boxes to mean much on {image.name}"
        )
        np.testing.assert_allclose(boxes, ref.boxes.xyxy.numpy(), atol=0.01, rtol=0, err_msg=image.name)
        np.testing.assert_allclose(conf, ref.boxes.conf.numpy(), atol=1e-4, rtol=0, err_msg=image.name)
        assert names == [ref.names[int(c)] for c in ref.boxes.cls.tolist()], image.name


def unmatched(
    boxes: np.ndarray, names: list[str], ref_boxes: np.ndarray, ref_names: list[str]
) -> tuple[list[str], float]:
    """The `boxes` without a same-class twin among `ref_boxes` (IoU >= 0.99, or corners within 0.05 px
    for a box clipped to zero width at the border, whose IoU is 0/0), and the largest corner distance
    to the nearest same-class twin (px) over the matched ones."""
    missing, worst = [], 0.0
    ious = box_iou(boxes, ref_boxes)
    for row, box, name in zip(ious, boxes, names, strict=True):
        same = np.array([n == name for n in ref_names], dtype=bool)
        corner = np.abs(ref_boxes - box).max(axis=1) if len(ref_boxes) else np.zeros(0)
        twins = np.flatnonzero(((row >= 0.99) | (corner <= 0.05)) & same)
        if len(twins) == 0:
            missing.append(f"{name} {np.round(box, 2).tolist()}")
        else:
            worst = max(worst, float(corner[twins].min()))
    return missing, worst


@pytest.mark.parametrize("slug", MODELS)
def test_api_and_pytorch_boxes_match_both_ways(
    stack: Stack, slug: str, all_images: list[Path], yolo11n_pt: Path, yolo26n_pt: Path
) -> None:
    """Against `YOLO(weights.pt).predict(rect=False)`: every API box has a .pt twin, every .pt box an
    API twin (IoU >= 0.99, corners within 0.1 px: 0.016 px for YOLO11n, 0.036 px for YOLO26n here),
    and the counts agree.

    Boxes at the threshold may fall either side of it between runtimes, so each side's boxes clearly
    above it (conf > STRONG) are looked for among all of the other side's, and the counts above STRONG
    may differ only by the boxes within BAND of it.
    """
    weights = yolo11n_pt if slug.endswith("yolo11n") else yolo26n_pt
    torch_model = YOLO(str(weights))
    worst, total = 0.0, 0
    for image in all_images:
        body = stack.predict(slug, image, conf=0.05, iou=IOU).json()
        boxes, conf, names = api_arrays(body)
        ref = torch_model.predict(str(image), conf=0.05, iou=IOU, rect=False, verbose=False)[0]
        ref_boxes = ref.boxes.xyxy.numpy().astype(np.float64)
        ref_conf = ref.boxes.conf.numpy().astype(np.float64)
        ref_names = [ref.names[int(c)] for c in ref.boxes.cls.tolist()]
        strong, ref_strong = conf > STRONG, ref_conf > STRONG
        assert strong.sum() > 0 or image.name.startswith("odd_12x")
        missing, far = unmatched(boxes[strong], list(np.array(names)[strong]), ref_boxes, ref_names)
        assert not missing, f"{image.name}: API boxes with no twin in the .pt results: {missing[:5]}"
        missing, _ = unmatched(ref_boxes[ref_strong], list(np.array(ref_names)[ref_strong]), boxes, names)
        assert not missing, f"{image.name}: .pt boxes the API misses: {missing[:5]}"
        near = int((np.abs(conf - STRONG) <= BAND).sum() + (np.abs(ref_conf - STRONG) <= BAND).sum())
        assert abs(int(strong.sum()) - int(ref_strong.sum())) <= near, (
            f"{image.name}: {strong.sum()} API boxes above {STRONG}, {ref_strong.sum()} from the .pt"
        )
        worst, total = max(worst, far), total + int(strong.sum())
    print(f"{slug}: {total} boxes matched both ways; largest corner distance to the twin {worst:.3f} px")
    assert worst < 0.1, f"a box {worst:.3f} px from its .pt twin (the README says within a tenth of a pixel)"


def test_default_parameters_are_the_seed_contracts_defaults(stack: Stack, bus: Path) -> None:
    """No conf/iou/imgsz sent means conf 0.25, iou 0.45 (the reference page's; the Platform
    contract's is 0.70: tests/integration/test_platform_sdk.py), imgsz 640."""
    explicit = stack.predict(MODELS[0], bus, conf=0.25, iou=0.45, imgsz=640).json()["predictions"]
    default = stack.predict(MODELS[0], bus).json()["predictions"]
    assert default == explicit
    assert all(p["confidence"] > 0.25 for p in default)


def test_response_has_the_documented_shape(stack: Stack, bus: Path) -> None:
    response = stack.predict(MODELS[0], bus, conf=0.5)
    body = response.json()
    assert body["success"] is True
    assert body["image"] == {"width": 810, "height": 1080}
    assert set(body["speed"]) == {"preprocess", "inference", "postprocess"}
    timing = response.headers["Server-Timing"]
    assert timing.startswith("preprocess;dur=") and "inference;dur=" in timing
    assert body["predictions"], "the busy test model finds boxes on bus.jpg"
    for p in body["predictions"]:
        assert set(p) >= {"class", "confidence", "box"}
        assert isinstance(p["class"], str)
        assert 0.5 < p["confidence"] <= 1
        assert set(p["box"]) == {"x1", "y1", "x2", "y2"}
        assert 0 <= p["box"]["x1"] <= p["box"]["x2"] <= 810
        assert 0 <= p["box"]["y1"] <= p["box"]["y2"] <= 1080
