"""The parity gate is never vacuous: a model that finds nothing is still checked, on its raw outputs.

An untrained model finds nothing on bus.jpg, so comparing decoded results compares nothing; a
tampered ONNX of it (an output scaled by 1.01, a class bias changed) must still be refused.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from core.slug import Slug
from exporter import raw_parity
from exporter.errors import ExportError
from exporter.export import ExportRequest, ExportResult, export_model
from exporter.parity import Reference, check_parity, compare_results, reference_results

SLUG = Slug.parse("acme/blank/yolo11n")
IMGSZ = 160  # small and fast: 525 anchors
LAST_CLASS_CONV = re.compile(r"cv3\.2\.2/Conv$")  # the stride-32 class logits (one2one_ on NMS-free heads)


def _untrained(yaml_name: str, path: Path) -> Path:
    """A freshly built model: its class biases are about -9, so it finds nothing anywhere."""
    from ultralytics import YOLO

    torch.manual_seed(0)
    YOLO(yaml_name).save(str(path))
    return path


@pytest.fixture(scope="module")
def blank_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _untrained("yolo11n.yaml", tmp_path_factory.mktemp("blank") / "blank.pt")


@pytest.fixture(scope="module")
def blank_export(tmp_path_factory: pytest.TempPathFactory, blank_pt: Path) -> ExportResult:
    repo = tmp_path_factory.mktemp("repo") / "models"
    return export_model(ExportRequest(blank_pt, SLUG, repo, imgsz=IMGSZ))


def scale_output(src: Path, dst: Path, factor: float) -> Path:
    """`src` with a Mul by `factor` appended to its first output."""
    proto = onnx.load(str(src))
    out = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [f"{out}_unscaled" if t == out else t for t in node.output]
    proto.graph.initializer.append(numpy_helper.from_array(np.array(factor, np.float32), "tamper_factor"))
    proto.graph.node.append(helper.make_node("Mul", [f"{out}_unscaled", "tamper_factor"], [out]))
    onnx.save(proto, str(dst))
    return dst


def _scale_class_bias(src: Path, dst: Path, factor: float) -> Path:
    """`src` with the bias of the last class-logit convolution scaled by `factor`."""
    proto = onnx.load(str(src))
    conv = next(n for n in proto.graph.node if n.op_type == "Conv" and LAST_CLASS_CONV.search(n.name))
    init = next(i for i in proto.graph.initializer if i.name == conv.input[2])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), init.name))
    onnx.save(proto, str(dst))
    return dst


def test_a_model_that_finds_nothing_passes_on_its_raw_outputs(blank_export: ExportResult) -> None:
    report = blank_export.parity
    assert (report.reference, report.ours, report.matched) == (0, 0, 0)  # nothing decoded to compare
    assert report.raw_outputs_checked == 1  # output0, every anchor
    assert 0 < report.max_abs_diff < 1e-3  # float noise, and really computed
    assert (
        report.raw_rtol == raw_parity.RAW_RTOL
    )  # the strict tolerance: this model is not numerically chaotic
    assert report.summary().startswith("Ultralytics found no results on the sample to compare; 1 raw output")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda src, dst: scale_output(src, dst, 1.01), id="output0-times-1.01"),
        pytest.param(lambda src, dst: _scale_class_bias(src, dst, 1.01), id="class-bias-times-1.01"),
    ],
)
def test_a_tampered_onnx_of_that_model_is_refused(
    tamper: Callable[[Path, Path], Path],
    blank_export: ExportResult,
    blank_pt: Path,
    bus: Path,
    tmp_path: Path,
) -> None:
    tampered = tamper(blank_export.path / "model.onnx", tmp_path / "model.onnx")
    with pytest.raises(ExportError, match=r"raw output output0 differs .* by up to \S+ .*tolerance"):
        check_parity(blank_pt, tampered, blank_export.spec, bus, None)


@pytest.mark.parametrize(
    ("yaml_name", "nms"),
    [
        ("yolo11n.yaml", True),  # NMS in the graph: the head tensor it reads is compared instead
        ("yolo26n.yaml", False),  # NMS-free head, top-k in the graph: likewise
    ],
)
def test_selecting_graphs_are_checked_before_their_selection(
    yaml_name: str, nms: bool, tmp_path: Path, bus: Path
) -> None:
    """Post-NMS / top-k rows of a model that finds nothing hold nothing comparable (padding, or
    near-tied scores in any order): the dense head tensor before the selection carries the check."""
    weights = _untrained(yaml_name, tmp_path / "blank.pt")
    result = export_model(ExportRequest(weights, SLUG, tmp_path / "repo", imgsz=IMGSZ, nms=nms))
    assert result.parity.reference == 0
    assert result.parity.raw_outputs_checked == 2  # the selected rows, and the head tensor before them
    onnx_path = result.path / "model.onnx"
    tampered = _scale_class_bias(onnx_path, tmp_path / "tampered.onnx", 1.01)
    with pytest.raises(
        ExportError, match=r"parity check failed: raw output .*(before NMS / top-k|no counterpart)"
    ):
        check_parity(weights, tampered, result.spec, bus, nms)


def test_a_normal_export_still_passes_both_checks(tmp_path: Path, yolo11n_pt: Path, bus: Path) -> None:
    result = export_model(ExportRequest(yolo11n_pt, SLUG, tmp_path / "repo", imgsz=IMGSZ))
    report = result.parity
    assert report.reference > 0 and report.matched > 0  # decoded results compared
    assert report.raw_outputs_checked == 1
    assert report.summary().startswith(f"top {report.matched} results reproduced")
    # the gate hands on what it compared against: the upload sandbox reports it, predicting once
    assert report.ultralytics == reference_results(yolo11n_pt, result.spec, bus, None)
    assert "ultralytics" not in report.figures() and report.figures()["matched"] == report.matched
    again = tmp_path / "again.onnx"  # and the check is repeatable on the published file
    shutil.copy(result.path / "model.onnx", again)
    repeat = check_parity(yolo11n_pt, again, result.spec, bus, None)
    assert (repeat.reference, repeat.matched, repeat.raw_outputs_checked) == (
        report.reference,
        report.matched,
        report.raw_outputs_checked,
    )


def test_a_model_less_precise_than_the_tolerance_is_held_to_its_own_precision(
    blank_export: ExportResult, blank_pt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deep models can differ from themselves in float64 by more than `RAW_RTOL`: then (and only
    then) the tolerance is `NOISE_FACTOR` times that, still set by the PyTorch model alone."""
    monkeypatch.setattr(raw_parity, "float32_error", lambda ref, tensor: 5e-3)
    spec, source = blank_export.spec, blank_export.path / "model.onnx"
    tensor = np.zeros((1, 3, IMGSZ, IMGSZ), np.float32) + 0.5
    within = raw_parity.check_raw_outputs(
        blank_pt, scale_output(source, tmp_path / "a.onnx", 1.005), spec, tensor, None
    )
    assert within.rtol == pytest.approx(raw_parity.NOISE_FACTOR * 5e-3)
    with pytest.raises(ExportError, match=r"tolerance .* 4x this model's own float32 error"):
        raw_parity.check_raw_outputs(
            blank_pt, scale_output(source, tmp_path / "b.onnx", 1.05), spec, tensor, None
        )


def test_the_outside_check_refuses_an_onnx_that_does_not_reproduce_the_reported_reference(
    tmp_path: Path, yolo11n_pt: Path, bus: Path
) -> None:
    """The worker's check of a sandboxed export: only the ONNX and the reference the sandbox
    reported, no checkpoint. The true reference passes; one result moved by 2 px, a changed class,
    or a malformed report fails."""
    result = export_model(ExportRequest(yolo11n_pt, SLUG, tmp_path / "repo", imgsz=IMGSZ))
    onnx_path, spec = result.path / "model.onnx", result.spec
    raw = raw_parity.RawParity(1, 0.0, raw_parity.RAW_RTOL)
    reference = reference_results(yolo11n_pt, spec, bus, None)
    assert len(reference.conf) >= 100
    report = compare_results(onnx_path, spec, bus, reference, None, raw)
    assert report.matched == min(len(reference.conf), 50) and report.reference == len(reference.conf)
    best = int(np.argmax(reference.conf))
    moved = Reference([*reference.xyxy], reference.conf, reference.cls)
    moved.xyxy[best] = [v + 2 for v in reference.xyxy[best]]
    relabelled = Reference(reference.xyxy, reference.conf, [*reference.cls])
    relabelled.cls[best] = (reference.cls[best] + 1) % 80
    for wrong in (moved, relabelled):
        with pytest.raises(ExportError, match="parity check failed"):
            compare_results(onnx_path, spec, bus, wrong, None, raw)
    for malformed in ({"xyxy": [[1, 2, 3]], "conf": [0.5], "cls": [0]}, {"xyxy": []}, "x"):
        with pytest.raises(ExportError, match="malformed"):
            Reference.parse(malformed)
    assert (
        Reference.parse({"xyxy": reference.xyxy, "conf": reference.conf, "cls": reference.cls}) == reference
    )
