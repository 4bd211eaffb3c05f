"""The TensorRT path: header stripping, the generated config, the profile; on a host that cannot
build a plan (no GPU or no tensorrt) the one-line refusal, and on one that can a real plan,
compared with ONNX Runtime."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from typer.testing import CliRunner

from core.modelspec import SPEC_PARAMETER, ModelSpec
from exporter import tensorrt
from exporter.triton_config import ServingOptions, render_configs
from trident.cli import app

MISSING = tensorrt.missing_requirements()  # empty where this host can build plans
PLAN = b"ftrt\x00\x00\x00\x00" + bytes(range(256)) * 4  # a plan starts with TensorRT's own magic
META = {"description": "Ultralytics YOLO11n", "stride": 32, "task": "detect", "batch": 8, "imgsz": [640, 640]}


def ultralytics_engine(meta: dict[str, object], plan: bytes) -> bytes:
    """What Ultralytics writes: int32 little-endian length, the JSON metadata, then the plan."""
    header = json.dumps(meta).encode()
    return len(header).to_bytes(4, byteorder="little", signed=True) + header + plan


def spec(dynamic: bool = False) -> ModelSpec:
    return ModelSpec(
        task="detect", names={0: "person"}, imgsz=(640, 640), stride=32, dynamic=dynamic, end2end=False
    )


def test_header_written_by_ultralytics_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "model.plan"
    path.write_bytes(ultralytics_engine(META, PLAN))
    assert tensorrt.strip_plan_file(path) == META
    assert path.read_bytes() == PLAN
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_bare_plan_is_left_untouched(tmp_path: Path) -> None:
    assert tensorrt.strip_metadata_header(PLAN) == (PLAN, None)
    assert tensorrt.strip_metadata_header(b"") == (b"", None)
    not_json = (8).to_bytes(4, "little") + b"\xff" * 8 + PLAN
    assert tensorrt.strip_metadata_header(not_json) == (not_json, None)
    path = tmp_path / "model.plan"
    path.write_bytes(PLAN)
    assert tensorrt.strip_plan_file(path) is None and path.read_bytes() == PLAN


def test_tensorrt_config_serves_the_plan_with_the_onnx_configs_io_and_spec() -> None:
    inputs = [("images", [-1, 3, -1, -1])]
    outputs = [("output0", [-1, 84, -1])]
    configs = render_configs("a~b~c", spec(True), META, inputs, outputs, ServingOptions(max_batch=8))
    text = tensorrt.tensorrt_config(configs["configs/onnxruntime.pbtxt"], "fp16", version=3)
    config = mc.ModelConfig()
    text_format.Parse(text, config)
    assert config.platform == "tensorrt_plan" and not config.backend
    assert config.default_model_filename == "model.plan"
    assert list(config.version_policy.specific.versions) == [3]  # the version that has the plan
    assert config.max_batch_size == 8 and config.HasField("dynamic_batching")
    assert [i.name for i in config.input] == ["images"] and list(config.input[0].dims) == [3, -1, -1]
    assert ModelSpec.from_json(config.parameters[SPEC_PARAMETER].string_value) == spec(True)
    assert config.parameters["trident_precision"].string_value == "fp16"
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU


def test_profile_covers_batches_and_the_request_size_range() -> None:
    static = tensorrt.profile_for(spec(False), max_batch=8)
    assert (static.min, static.opt, static.max) == ((1, 3, 640, 640), (4, 3, 640, 640), (8, 3, 640, 640))
    dynamic = tensorrt.profile_for(spec(True), max_batch=8)
    assert dynamic.min == (1, 3, 32, 32) and dynamic.opt == (4, 3, 640, 640)
    assert dynamic.max == (8, 3, tensorrt.MAX_API_IMGSZ, tensorrt.MAX_API_IMGSZ)


def test_calibration_batches_are_full_and_letterboxed(tmp_path: Path) -> None:
    for i, (w, h) in enumerate([(300, 200), (640, 480), (100, 900)]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((h, w, 3), 60 * i, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    batches = list(tensorrt.calibration_batches(tmp_path, spec(), batch=2))
    assert [b.shape for b in batches] == [(2, 3, 640, 640), (2, 3, 640, 640)]
    assert batches[0].dtype == np.float32 and batches[0].min() >= 0 and batches[0].max() <= 1


def test_missing_requirements_name_what_this_host_lacks() -> None:
    assert any("tensorrt" in m for m in MISSING) == (importlib.util.find_spec("tensorrt") is None)
    if shutil.which("nvidia-smi") is None:
        assert any("NVIDIA GPU" in m for m in MISSING)


@pytest.mark.skipif(not MISSING, reason="this host can build plans: the real build is tested instead")
def test_export_engine_where_a_requirement_is_missing_stops_with_one_line(tmp_path: Path) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not reached")
    repository = tmp_path / "repo"
    result = CliRunner().invoke(
        app,
        ["export", str(weights), "--slug", "a/b/c", "--repository", str(repository), "--format", "engine"],
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: --format engine") and all(m in lines[0] for m in MISSING)
    assert not repository.exists()


@pytest.mark.skipif(bool(MISSING), reason=f"this host cannot build plans: {MISSING}")
def test_a_real_plan_matches_onnx_runtime(tmp_path: Path, yolo11n_pt: Path, bus: Path) -> None:
    """Where a GPU and tensorrt are present: build an FP32 plan and run it beside ONNX Runtime."""
    import onnxruntime as ort
    import tensorrt as trt
    import torch
    from ultralytics import YOLO

    onnx_path = Path(YOLO(str(yolo11n_pt)).export(format="onnx", imgsz=640))
    plan = tensorrt.build_plan(
        onnx_path, tensorrt.profile_for(spec(), max_batch=1), tensorrt.EngineOptions(fp16=False), spec()
    )
    image = cv2.resize(cv2.imread(str(bus)), (640, 640))[..., ::-1]
    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]

    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    buffers = {inputs[0]: torch.from_numpy(x).cuda()}
    context.set_input_shape(inputs[0], tuple(x.shape))
    for name in outputs:
        buffers[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=torch.float32, device="cuda")
    for name, tensor in buffers.items():
        context.set_tensor_address(name, tensor.data_ptr())
    stream = torch.cuda.Stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    got = buffers[outputs[0]].cpu().numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=0.05, rtol=1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "plan"], "unknown --format"),
        (["--int8"], "apply to --format engine"),
        (["--format", "engine", "--int8"], "--int8 needs --calibration"),
    ],
)
def test_bad_engine_options_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not reached")
    result = CliRunner().invoke(app, ["export", str(weights), "--slug", "a/b/c", *args])
    assert result.exit_code == 1 and message in result.output
