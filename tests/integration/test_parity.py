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

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration
MODELS = ["test/coco/yolo11n", "test/coco/yolo26n"]
CONF, IOU = 0.001, 0.45


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


@pytest.mark.parametrize("slug", MODELS)
def test_every_api_box_matches_the_pytorch_model(
    stack: Stack, slug: str, all_images: list[Path], yolo11n_pt: Path, yolo26n_pt: Path
) -> None:
    """Against `YOLO(weights.pt).predict(rect=False)`: each box has a twin with IoU >= 0.99.

    A box clipped to zero width at the image border has no IoU (0/0); its twin is the box whose
    corners are within 0.05 px.
    """
    weights = yolo11n_pt if slug.endswith("yolo11n") else yolo26n_pt
    torch_model = YOLO(str(weights))
    for image in all_images:
        body = stack.predict(slug, image, conf=0.05, iou=IOU).json()
        boxes, conf, names = api_arrays(body)
        ref = torch_model.predict(str(image), conf=0.05, iou=IOU, rect=False, verbose=False)[0]
        ref_names = [ref.names[int(c)] for c in ref.boxes.cls.tolist()]
        # boxes at the threshold may fall either side of it: compare those clearly above
        strong = conf > 0.06
        assert strong.sum() > 0 or image.name.startswith("odd_12x")
        ious = box_iou(boxes[strong], ref.boxes.xyxy.numpy().astype(np.float64))
        ref_boxes = ref.boxes.xyxy.numpy().astype(np.float64)
        for row, box, name in zip(ious, boxes[strong], np.array(names)[strong], strict=True):
            near = np.abs(ref_boxes - box).max(axis=1) <= 0.05
            twins = [ref_names[j] == name for j in np.flatnonzero((row >= 0.99) | near)]
            assert any(twins), f"{image.name}: a {name} box has no twin in the .pt results"


def test_default_parameters_are_the_platform_defaults(stack: Stack, bus: Path) -> None:
    """No conf/iou/imgsz sent means conf 0.25, iou 0.45, imgsz 640."""
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
