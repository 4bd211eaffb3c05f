"""Every format of the Platform's Predict tab, over HTTP: the boxes `YOLO(<exported onnx>).predict(file)`
gives for a file of that format (read by its suffix, as Ultralytics reads it), to 0.01 px, and each
format's bomb a 400 with the service up. The files are made here (tests/helpers/formats.py) from
bus.jpg and zidane.jpg, and uploaded under a name without a suffix: Trident sniffs the bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from ultralytics import YOLO

from tests.helpers.formats import FORMATS, SUFFIX, bomb, encode, rotated
from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration
SLUG = "test/coco/yolo11n"  # the session stack's busy detector: hundreds of boxes an image
CONF, IOU = 0.001, 0.45


def upload(stack: Stack, data: bytes, **params: object) -> httpx.Response:
    return httpx.post(
        f"{stack.base_url}/api/models/{SLUG}/predict",
        headers={"Authorization": f"Bearer {stack.api_key}"},
        files={"file": ("upload", data, "application/octet-stream")},
        data={k: str(v) for k, v in params.items()},
        timeout=60,
    )


def arrays(body: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    preds = body["predictions"]
    boxes = np.array([[p["box"][k] for k in ("x1", "y1", "x2", "y2")] for p in preds], dtype=np.float64)
    return boxes.reshape(-1, 4), np.array([p["confidence"] for p in preds], dtype=np.float64)


@pytest.fixture(scope="module")
def files(bus: Path, zidane: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One file per format (bus and zidane in turn), and EXIF-rotated JPEG and HEIC."""
    root = tmp_path_factory.mktemp("formats")
    pictures = [np.asarray(Image.open(p).convert("RGB")) for p in (bus, zidane)]
    made = {}
    for i, fmt in enumerate(FORMATS):
        made[fmt] = root / f"{fmt}{SUFFIX[fmt]}"
        made[fmt].write_bytes(encode(pictures[i % 2], fmt, second=pictures[(i + 1) % 2]))
    for fmt in ("jpeg", "heic"):
        made[f"rotated-{fmt}"] = root / f"rotated{SUFFIX[fmt]}"
        made[f"rotated-{fmt}"].write_bytes(rotated(pictures[0], fmt))
    return made


def test_every_format_gives_the_boxes_of_the_exported_onnx(stack: Stack, files: dict[str, Path]) -> None:
    stack.wait_model(SLUG)
    onnx_model = YOLO(str(stack.exported[SLUG].path / "model.onnx"), task="detect")
    total = 0
    for name, path in files.items():
        response = upload(stack, path.read_bytes(), conf=CONF, iou=IOU)
        assert response.status_code == 200, f"{name}: {response.text}"
        body = response.json()
        assert "predictions" in body, f"{name} was answered as a video"
        boxes, conf = arrays(body)
        # a GIF is a video to Ultralytics: its one frame's result
        ref = next(iter(onnx_model.predict(str(path), conf=CONF, iou=IOU, verbose=False, stream=True)))
        assert body["image"] == {"width": ref.orig_shape[1], "height": ref.orig_shape[0]}, name
        assert len(conf) == len(ref.boxes) >= 100, (name, len(conf), len(ref.boxes))
        np.testing.assert_allclose(boxes, ref.boxes.xyxy.numpy(), atol=0.01, rtol=0, err_msg=name)
        np.testing.assert_allclose(conf, ref.boxes.conf.numpy(), atol=1e-4, rtol=0, err_msg=name)
        total += len(conf)
    upright = files["rotated-jpeg"], files["rotated-heic"]
    for path in upright:  # EXIF orientation 6: bus.jpg (810x1080) shown turned a quarter
        shape = onnx_model.predict(str(path), conf=0.5, verbose=False)[0].orig_shape
        assert shape == (810, 1080), (path.name, shape)
    print(f"{total} boxes over {len(files)} files, each within 0.01 px of Ultralytics'")
    assert total >= 1000


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bomb_of_each_format_is_a_400_and_the_service_stays_up(
    stack: Stack, fmt: str, files: dict[str, Path]
) -> None:
    response = upload(stack, bomb(fmt))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_image"
    truncated = files[fmt].read_bytes()
    assert upload(stack, truncated[: len(truncated) // 4]).status_code == 400
    assert upload(stack, files[fmt].read_bytes(), conf=0.5).status_code == 200
