"""The catalog reads everything it serves from Triton's config, the uint8 input included."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from core.modelspec import CANDIDATES_OUTPUT, CONF_INPUT, U8_INPUT, ModelSpec
from core.slug import Slug
from frontend.serving.catalog import served_model_from_config
from pipeline.prepare import prepare
from postprocess.letterbox import model_input
from postprocess.nms import class_aware_nms, raw_candidates

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
    normalised = load_backend().from_u8(u8.tensor)
    expected, _ = model_input(image, export_hw=(640, 640), stride=32, dynamic=True, imgsz=320)
    np.testing.assert_array_equal(normalised, expected)
    np.testing.assert_array_equal(prepare(image, SPEC, 320).tensor, expected)


def test_compact_candidates_output_is_used_only_when_the_config_declares_it() -> None:
    local = config(("images", "TYPE_FP32"), (U8_INPUT, "TYPE_UINT8"), (CONF_INPUT, "TYPE_FP32"))
    local["output"].append({"name": CANDIDATES_OUTPUT})
    served = served_model_from_config(Slug.parse("a/b/c"), "1", local)
    assert served is not None and served.candidates is True
    assert served.output_names == ("output0",)  # asked for in its place, never both
    native = served_model_from_config(Slug.parse("a/b/c"), "1", config(("images", "TYPE_FP32")))
    assert native is not None and native.candidates is False


def load_backend() -> Any:
    """exporter/backend/model.py, which runs in Triton's stub, with its Triton module stubbed."""
    sys.modules.setdefault("triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    path = Path(__file__).parents[2] / "exporter" / "backend" / "model.py"
    module_spec = importlib.util.spec_from_file_location("trident_backend_model", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("conf", [0.25, 0.1, 0.001, 0.3])
@pytest.mark.parametrize("extra", [0, 32, 1])  # detect, segment coefficients, obb angle
def test_backend_candidates_give_the_same_rows_as_the_full_head(conf: float, extra: int) -> None:
    """Whatever the frontend's exact filter and NMS keep from the full head, they keep, bit for
    bit and in the same order, from the compact head, scores sitting right at the threshold too."""
    backend = load_backend()
    nc, anchors = 80, 8400
    rng = np.random.default_rng(int(conf * 1000) + extra)
    head = rng.random((1, 4 + nc + extra, anchors), dtype=np.float32)
    head[:, :4] *= 640
    head[:, 4 : 4 + nc] **= 300  # mostly low scores, as a real head
    at = rng.choice(anchors, 40, replace=False)
    f32 = np.float32(conf)
    for k, value in enumerate((f32, np.nextafter(f32, np.float32(1)), np.nextafter(f32, np.float32(0)))):
        head[0, 4 + k, at[k::3]] = value  # exactly at, just above and just below the threshold
    compact = backend.candidates(head, nc, np.float32(conf))
    assert compact.shape[:2] == head.shape[:2] and compact.shape[2] < anchors
    rotated = extra == 1
    full_rows = raw_candidates(head[0], nc, conf, rotated=rotated)
    compact_rows = raw_candidates(compact[0], nc, conf, rotated=rotated)
    np.testing.assert_array_equal(compact_rows, full_rows)
    if not rotated:
        kept = class_aware_nms(compact_rows, 0.45, 300)
        np.testing.assert_array_equal(kept, class_aware_nms(full_rows, 0.45, 300))
    assert backend.candidates(head, nc, None).shape == (1, 4 + nc + extra, 0)  # no threshold: nothing


class ChunkSession:
    """A fixed batch-2 graph's stand-in: each output row says which input row it came from."""

    def run(self, names: list[str], feed: dict[str, Any]) -> list[Any]:
        x = feed["images"]
        assert x.shape[0] == 2, "a fixed-batch graph only ever sees its batch size"
        return [x[:, 0, 0, :1] * 2, x.mean(axis=(1, 2, 3))]


def test_backend_batches_mixed_requests_into_a_reused_buffer_and_joins_fixed_batch_chunks() -> None:
    """Requests of both input kinds stack into one float32 batch (the buffer reused, so a smaller
    batch after a larger one must not see stale rows), and a fixed-batch graph's chunked outputs
    join into one array per output with the zero-padded tail cut off."""
    backend = load_backend()
    model = backend.TritonPythonModel()
    model.session, model.input_name, model.fixed_batch = ChunkSession(), "images", 2
    model.output_names = ["a", "b"]
    model.inputs, model.outputs = backend.Scratch(), [backend.Scratch(), backend.Scratch()]
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    f32 = rng.random((2, 3, 4, 5), dtype=np.float32)
    cases: list[list[NDArray[Any]]] = [[u8, f32], [f32[:1]], [u8[:1], u8[1:]]]
    for arrays in cases:
        expected = np.concatenate([backend.from_u8(a) if a.dtype == np.uint8 else a for a in arrays])
        batch = model.batch_input(arrays, (3, 4, 5))
        np.testing.assert_array_equal(batch, expected)
        a, b = model.run(batch)
        np.testing.assert_array_equal(a, expected[:, 0, 0, :1] * 2)
        np.testing.assert_allclose(b, expected.mean(axis=(1, 2, 3)), rtol=1e-6)
        assert a.shape[0] == b.shape[0] == len(expected)
