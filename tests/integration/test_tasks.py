"""Every task through Triton, at parity with `YOLO(<exported onnx>).predict()`.

YAML-built models of every task in the YOLO11 and YOLO26 families exported with default
arguments, the YOLO26 ones also with `nms=False` (NMS-free heads), and one model with `nms=True`
(NMS inside the graph); on bus.jpg, zidane.jpg and three odd-size images, at conf 0.001 (OBB at
0.1: Ultralytics' rotated NMS compares every pair of candidates, 9 s an image on two cores at
0.001; at 0.1 each image still fills `max_det`, 300 boxes, so the comparison covers 1,500).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from ultralytics import YOLO

from tests.helpers.models import build_busy_model
from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration
CONF, OBB_CONF, IOU = 0.001, 0.1, 0.45

# slug -> (yaml, nms flag)
MODELS: dict[str, tuple[str, bool | None]] = {
    **{f"tasks/v11/{t}": (f"yolo11n-{t}.yaml", None) for t in ("seg", "pose", "obb", "cls")},
    **{f"tasks/v26/{t}": (f"yolo26n-{t}.yaml", None) for t in ("seg", "pose", "obb", "cls")},
    **{f"tasks/v26-e2e/{t}": (f"yolo26n-{t}.yaml", False) for t in ("seg", "pose", "obb")},
    "tasks/v26-e2e/det": ("yolo26n.yaml", False),
    "tasks/v11-nms/det": ("yolo11n.yaml", True),
}


@pytest.fixture(scope="module")
def task_models(stack: Stack, model_dir: Path) -> dict[str, Path]:
    """Export all task models into the running stack; returns slug -> exported ONNX."""
    onnx = {}
    for slug, (yaml_name, nms) in MODELS.items():
        weights = build_busy_model(yaml_name, model_dir / f"{yaml_name[:-5]}.pt")
        onnx[slug] = stack.export(weights, slug, nms=nms).path / "model.onnx"
    for slug in MODELS:
        stack.wait_model(slug, timeout_s=120)
    return onnx


def rasterise(points: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(hw, dtype=np.uint8)
    if len(points):
        cv2.fillPoly(canvas, [np.round(np.asarray(points, dtype=np.float64)).astype(np.int32)], 1)
    return canvas


def check_boxes(preds: list[dict[str, Any]], boxes: Any, names: dict[int, str], where: str) -> None:
    assert len(preds) == len(boxes), where
    ours = np.array([[p["box"][k] for k in ("x1", "y1", "x2", "y2")] for p in preds]).reshape(-1, 4)
    np.testing.assert_allclose(ours, boxes.xyxy.numpy(), atol=0.01, rtol=0, err_msg=where)
    np.testing.assert_allclose(
        [p["confidence"] for p in preds], boxes.conf.numpy(), atol=1e-4, rtol=0, err_msg=where
    )
    assert [p["class"] for p in preds] == [names[int(c)] for c in boxes.cls.tolist()], where


def compare(slug: str, preds: list[dict[str, Any]], ref: Any) -> None:
    where = f"{slug} on {Path(ref.path).name}"
    h, w = ref.orig_shape
    if slug.endswith("/cls"):
        assert [p["class"] for p in preds] == [ref.names[i] for i in ref.probs.top5], where
        np.testing.assert_allclose(
            [p["confidence"] for p in preds], ref.probs.top5conf.numpy(), atol=1e-4, rtol=0
        )
        return
    if slug.endswith("/obb"):
        assert len(preds) == len(ref.obb), where
        corners = np.array([[[p["box"][f"x{i}"], p["box"][f"y{i}"]] for i in range(1, 5)] for p in preds])
        np.testing.assert_allclose(
            corners.reshape(-1, 4, 2), ref.obb.xyxyxyxy.numpy(), atol=0.01, rtol=0, err_msg=where
        )
        np.testing.assert_allclose([p["confidence"] for p in preds], ref.obb.conf.numpy(), atol=1e-4, rtol=0)
        assert [p["class"] for p in preds] == [ref.names[int(c)] for c in ref.obb.cls.tolist()], where
        return
    check_boxes(preds, ref.boxes, ref.names, where)
    if slug.endswith("/seg"):
        for i, (p, xy) in enumerate(zip(preds, ref.masks.xy, strict=True)):
            a, b = rasterise(np.array(p["segments"]).reshape(-1, 2), (h, w)), rasterise(xy, (h, w))
            union = (a | b).sum()
            iou = (a & b).sum() / union if union else 1.0  # both empty: a sliver clipped at the border
            assert iou >= 0.99, f"{where}: mask {i} IoU {iou:.4f}"
    if slug.endswith("/pose"):
        kpts = np.array([[[k["x"], k["y"], k["conf"]] for k in p["keypoints"]] for p in preds])
        ref_kpts = ref.keypoints.data.numpy()
        assert kpts.shape == ref_kpts.shape, where
        np.testing.assert_allclose(kpts[..., :2], ref_kpts[..., :2], atol=0.01, rtol=0, err_msg=where)
        np.testing.assert_allclose(kpts[..., 2], ref_kpts[..., 2], atol=1e-4, rtol=0, err_msg=where)


@pytest.mark.parametrize("slug", list(MODELS))
def test_api_matches_ultralytics_for_every_task(
    stack: Stack, task_models: dict[str, Path], slug: str, all_images: list[Path]
) -> None:
    reference = YOLO(str(task_models[slug]), task=stack.exported[slug].spec.task)
    conf = OBB_CONF if slug.endswith("/obb") else CONF
    with ThreadPoolExecutor(1) as pool:  # Ultralytics computes while the API answers (2 cores)
        expected = pool.map(
            lambda i: reference.predict(str(i), conf=conf, iou=IOU, verbose=False)[0], all_images
        )
        answers = [stack.predict(slug, image, conf=conf, iou=IOU) for image in all_images]
        total = 0
        for response, ref in zip(answers, expected, strict=True):
            assert response.status_code == 200, response.text
            preds = response.json()["predictions"]
            total += len(preds)
            compare(slug, preds, ref)
    assert total >= (25 if slug.endswith("/cls") else 300), f"{slug}: too few results ({total}) to mean much"


def test_the_pipeline_follows_metadata_not_names(stack: Stack, task_models: dict[str, Path]) -> None:
    """The same YAML exported three ways gets three pipelines, from its metadata alone."""
    assert stack.exported["tasks/v26-e2e/det"].spec.end2end is True
    assert stack.exported["tasks/v11-nms/det"].spec.end2end is True
    assert stack.exported["test/coco/yolo26n"].spec.end2end is False
    assert stack.exported["tasks/v26/pose"].spec.kpt_shape == (17, 3)
