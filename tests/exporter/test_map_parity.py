"""Semantic and depth models export, parity-gated: logits and class map, or the depth map, against
the PyTorch model (raw), and the served map against Ultralytics' decoding (decoded)."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from core.slug import Slug
from exporter.errors import ExportError
from exporter.export import ExportRequest, ExportResult, export_model
from exporter.parity import check_parity
from tests.exporter.test_parity_gate import scale_output
from tests.helpers.models import build_busy_model

IMGSZ = 160


@pytest.fixture(scope="module")
def map_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, ExportResult]]:
    root = tmp_path_factory.mktemp("maps")
    exports = {}
    for task, yaml_name in (("semantic", "yolo26n-sem.yaml"), ("depth", "yolo26n-depth.yaml")):
        weights = build_busy_model(yaml_name, root / f"{task}.pt")
        slug = Slug.parse(f"acme/maps/{task}")
        exports[task] = weights, export_model(ExportRequest(weights, slug, root / "repo", imgsz=IMGSZ))
    return exports


def test_semantic_export_is_checked_on_logits_and_class_map(
    map_exports: dict[str, tuple[Path, ExportResult]],
) -> None:
    _, result = map_exports["semantic"]
    assert result.spec.task == "semantic"
    summary = result.parity.summary()
    assert "class map equal on" in summary and "2 raw outputs match PyTorch" in summary, summary
    config = (result.path.parent / "config.pbtxt").read_text()
    assert "TYPE_UINT8" in config.split("output {")[1]


def test_depth_export_is_checked_on_its_map(map_exports: dict[str, tuple[Path, ExportResult]]) -> None:
    _, result = map_exports["depth"]
    assert result.spec.task == "depth"
    assert "depth within" in result.parity.summary() and "1 raw outputs" in result.parity.summary()


def test_a_scaled_depth_map_is_refused(
    tmp_path: Path, map_exports: dict[str, tuple[Path, ExportResult]], bus: Path
) -> None:
    weights, result = map_exports["depth"]
    tampered = scale_output(result.path / "model.onnx", tmp_path / "model.onnx", 1.01)
    with pytest.raises(ExportError, match="raw output output0 differs"):
        check_parity(weights, tampered, result.spec, bus, None)


def test_changed_class_logits_are_refused(
    tmp_path: Path, map_exports: dict[str, tuple[Path, ExportResult]], bus: Path
) -> None:
    weights, result = map_exports["semantic"]
    proto = onnx.load(str(result.path / "model.onnx"))
    conv = [n for n in proto.graph.node if n.op_type == "Conv"][-1]  # the classifier's 1x1 logits
    init = next(i for i in proto.graph.initializer if i.name == conv.input[2])
    bias = numpy_helper.to_array(init).copy()
    bias[3] += 1.0  # logits span tens: 1.0 is a few percent of the channel, many times the tolerance
    init.CopyFrom(numpy_helper.from_array(bias, init.name))
    tampered = tmp_path / "model.onnx"
    onnx.save(proto, str(tampered))
    with pytest.raises(ExportError, match="parity check failed: raw output"):
        check_parity(weights, tampered, result.spec, bus, None)
    shutil.rmtree(tmp_path, ignore_errors=True)
