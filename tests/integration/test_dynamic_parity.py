"""A `--dynamic` export served through Triton at image sizes other than 640: the API returns what
`YOLO(<exported onnx>).predict(imgsz=..., rect=True)` returns, on a portrait photo and a panorama
(whose minimum rectangle is far from square). The config and the letterbox alone are unit tests;
this is the whole path, Triton's variable input shape included."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from ultralytics import YOLO

from tests.helpers.stack import Stack
from tests.integration.test_parity import CONF, IOU, api_arrays

pytestmark = pytest.mark.integration
SLUG = "test/dynamic/yolo11n"


@pytest.fixture(scope="module")
def dynamic_model(stack: Stack, yolo11n_pt: Path) -> Path:
    result = stack.export(yolo11n_pt, SLUG, dynamic=True)
    stack.wait_model(SLUG)
    return result.path / "model.onnx"


@pytest.fixture(scope="module")
def panorama(bus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bus.jpg stretched to 3000x600 (w x h), saved losslessly: a 5:1 panorama."""
    path = tmp_path_factory.mktemp("panorama") / "panorama_3000x600.png"
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(bus)), (3000, 600), interpolation=cv2.INTER_AREA))
    return path


@pytest.mark.parametrize("imgsz", [320, 1280])
def test_a_dynamic_model_matches_its_onnx_at_other_sizes(
    stack: Stack, dynamic_model: Path, imgsz: int, bus: Path, panorama: Path
) -> None:
    onnx_model = YOLO(str(dynamic_model), task="detect")
    for image in (bus, panorama):
        response = stack.predict(SLUG, image, conf=CONF, iou=IOU, imgsz=imgsz)
        assert response.status_code == 200, response.text
        boxes, conf, names = api_arrays(response.json())
        ref = onnx_model.predict(str(image), conf=CONF, iou=IOU, imgsz=imgsz, rect=True, verbose=False)[0]
        assert len(conf) == len(ref.boxes), image.name
        assert len(conf) >= 50, f"too few boxes to mean much on {image.name} at {imgsz}"
        np.testing.assert_allclose(boxes, ref.boxes.xyxy.numpy(), atol=0.01, rtol=0, err_msg=image.name)
        np.testing.assert_allclose(conf, ref.boxes.conf.numpy(), atol=1e-4, rtol=0, err_msg=image.name)
        assert names == [ref.names[int(c)] for c in ref.boxes.cls.tolist()], image.name
    assert ref.orig_shape == (600, 3000)  # the panorama was compared too
