"""The catalog reads everything it serves from Triton's config, the uint8 input included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from frontend.catalog import served_model_from_config
from frontend.inference import prepare
from postprocess.letterbox import model_input
from trident.modelspec import U8_INPUT, ModelSpec
from trident.slug import Slug

SPEC = ModelSpec(task="detect", names={0: "person"}, imgsz=(640, 640), stride=32, dynamic=True, end2end=False)


def config(*inputs: tuple[str, str]) -> dict[str, Any]:
    return {
        "input": [{"name": n, "data_type": t} for n, t in inputs],
        "output": [{"name": "output0"}],
        "parameters": {"trident": {"string_value": SPEC.to_json()}},
    }


@pytest.mark.parametrize(
    ("inputs", "u8"),
    [
        ([("images", "TYPE_FP32"), (U8_INPUT, "TYPE_UINT8")], True),  # the local Python-backend config
        ([("images", "TYPE_FP32")], False),  # the native ONNX Runtime config, or an older export
    ],
)
def test_uint8_input_is_used_only_when_the_config_declares_it(
    inputs: list[tuple[str, str]], u8: bool
) -> None:
    served = served_model_from_config(Slug.parse("a/b/c"), "1", config(*inputs))
    assert served is not None
    assert served.input_name == "images"
    assert served.u8_input is u8


def test_uint8_input_normalised_as_the_backend_does_is_the_float_tensor() -> None:
    """What the backend computes from the uint8 image is bit-identical to the float32 tensor."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (417, 301, 3), dtype=np.uint8)
    u8 = prepare(image, SPEC, 320, u8=True)
    assert u8.tensor.dtype == np.uint8 and u8.tensor.shape == (1, *u8.input_hw, 3)
    chw = u8.tensor[..., ::-1].transpose(0, 3, 1, 2)  # exporter/backend/model.py `from_u8`
    normalised = np.ascontiguousarray(chw, dtype=np.float32) / np.float32(255)
    expected, _ = model_input(image, export_hw=(640, 640), stride=32, dynamic=True, imgsz=320)
    np.testing.assert_array_equal(normalised, expected)
    np.testing.assert_array_equal(prepare(image, SPEC, 320).tensor, expected)
