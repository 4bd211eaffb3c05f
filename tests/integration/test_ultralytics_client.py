"""Ultralytics' own Triton client runs against a model Trident exported, and agrees with the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ultralytics import YOLO

from tests.helpers.stack import Stack
from tests.integration.test_parity import api_arrays

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("slug", ["test/coco/yolo11n", "test/coco/yolo26n"])
def test_ultralytics_grpc_client_gets_the_same_boxes(
    stack: Stack, slug: str, bus: Path, zidane: Path
) -> None:
    name = stack.exported[slug].triton_name
    client = YOLO(f"grpc://127.0.0.1:{stack.settings.triton_grpc_port}/{name}", task="detect")
    for image in (bus, zidane):
        ref = client.predict(str(image), conf=0.01, iou=0.45, verbose=False)[0]
        boxes, conf, names = api_arrays(stack.predict(slug, image, conf=0.01, iou=0.45).json())
        assert len(conf) == len(ref.boxes) > 0
        np.testing.assert_allclose(boxes, ref.boxes.xyxy.numpy(), atol=0.01, rtol=0)
        np.testing.assert_allclose(conf, ref.boxes.conf.numpy(), atol=1e-4, rtol=0)
        assert names == [ref.names[int(c)] for c in ref.boxes.cls.tolist()]
        assert names[0] in ref.names.values() and ref.names[0] == "person"
