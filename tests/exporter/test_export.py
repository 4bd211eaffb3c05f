"""The exporter writes a complete, versioned Triton model folder, or nothing at all."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from core.modelspec import ModelSpec
from core.slug import Slug
from exporter import onnx_export
from exporter.errors import ExportError
from exporter.export import ExportRequest, export_model
from exporter.triton_config import ServingOptions, render_configs

SLUG = Slug.parse("acme/cars/yolo11n")


def read_config(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, yolo11n_pt: Path) -> Path:
    repo = tmp_path_factory.mktemp("repo") / "models"
    options = ServingOptions(max_batch=4, instances=2, execution_env="/opt/runtime-env")
    export_model(ExportRequest(yolo11n_pt, SLUG, repo, options=options, visibility="public"))
    return repo


def test_model_folder_layout(exported: Path) -> None:
    folder = exported / SLUG.triton_name
    assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt", "configs"]
    assert sorted(p.name for p in (folder / "1").iterdir()) == ["__pycache__", "model.onnx", "model.py"]
    assert not list(exported.parent.glob(".*staging*"))  # the staging folder is gone


def test_local_config_runs_onnx_runtime_in_the_python_backend(exported: Path) -> None:
    config = read_config(exported / SLUG.triton_name / "config.pbtxt")
    assert config.name == SLUG.triton_name
    assert config.backend == "python"
    assert config.max_batch_size == 4
    assert config.HasField("dynamic_batching")
    assert config.instance_group[0].count == 2
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert config.parameters["EXECUTION_ENV_PATH"].string_value == "/opt/runtime-env"
    # float32 `images` first (Ultralytics' client casts to the first input's dtype), then the
    # letterboxed BGR uint8 image Trident sends; a request carries one of the two
    assert [(i.name, list(i.dims), i.data_type, i.optional) for i in config.input] == [
        ("images", [3, 640, 640], mc.TYPE_FP32, True),
        ("images_u8", [640, 640, 3], mc.TYPE_UINT8, True),
        ("conf_threshold", [1], mc.TYPE_FP32, True),
    ]
    # and returns, when asked, only the anchors that can pass that threshold (see core.modelspec)
    assert [(o.name, list(o.dims)) for o in config.output] == [
        ("output0", [84, 8400]),
        ("trident_candidates", [84, -1]),
    ]


def test_native_config_is_for_the_ngc_onnxruntime_backend(exported: Path) -> None:
    config = read_config(exported / SLUG.triton_name / "configs" / "onnxruntime.pbtxt")
    assert config.platform == "onnxruntime_onnx"
    assert config.default_model_filename == "model.onnx"
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert "EXECUTION_ENV_PATH" not in config.parameters
    # a static export is a batch-1 graph: the native backend sees the batch axis in the dims
    assert config.max_batch_size == 0
    assert [list(i.dims) for i in config.input] == [[1, 3, 640, 640]]
    assert [list(o.dims) for o in config.output] == [[1, 84, 8400]]


def test_config_carries_the_spec_and_ultralytics_metadata(exported: Path, yolo11n_pt: Path) -> None:
    config = read_config(exported / SLUG.triton_name / "config.pbtxt")
    spec = ModelSpec.from_json(config.parameters["trident"].string_value)
    assert spec.task == "detect"
    assert spec.names[0] == "person" and len(spec.names) == 80
    assert spec.imgsz == (640, 640) and spec.stride == 32
    assert spec.dynamic is False and spec.end2end is False
    assert spec.owner == "acme" and spec.visibility == "public"
    assert spec.provenance["source_name"] == yolo11n_pt.name
    assert len(spec.provenance["source_sha256"]) == 64
    metadata = ast.literal_eval(config.parameters["metadata"].string_value)  # as Ultralytics' client reads it
    assert metadata["task"] == "detect"
    assert metadata["names"][0] == "person"
    assert metadata["args"]["dynamic"] is False


def test_exporting_again_adds_a_version(exported: Path, yolo11n_pt: Path) -> None:
    result = export_model(ExportRequest(yolo11n_pt, SLUG, exported))
    assert result.version == 2
    assert (exported / SLUG.triton_name / "2" / "model.onnx").is_file()
    assert (exported / SLUG.triton_name / "1" / "model.onnx").is_file()


def test_dynamic_export_declares_free_height_and_width(tmp_path: Path, yolo11n_pt: Path) -> None:
    result = export_model(ExportRequest(yolo11n_pt, SLUG, tmp_path / "repo", dynamic=True))
    config = read_config(result.path.parent / "config.pbtxt")
    assert list(config.input[0].dims) == [3, -1, -1]
    assert result.spec.dynamic is True
    native = read_config(result.path.parent / "configs" / "onnxruntime.pbtxt")
    assert native.max_batch_size == 8 and native.HasField("dynamic_batching")


def test_a_parity_mismatch_aborts_and_publishes_nothing(
    tmp_path: Path, yolo11n_pt: Path, yolo26n_pt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the ONNX does not reproduce the checkpoint (here: another model's ONNX), nothing lands."""
    from ultralytics import YOLO

    real_export = onnx_export.export_onnx

    def wrong_onnx(model: object, out_dir: Path, **kwargs: Any) -> Path:
        return real_export(YOLO(str(yolo26n_pt)), out_dir, **kwargs)

    monkeypatch.setattr("exporter.export.export_onnx", wrong_onnx)
    repo = tmp_path / "repo"
    with pytest.raises(ExportError, match="parity check failed"):
        export_model(ExportRequest(yolo11n_pt, SLUG, repo))
    assert not (repo / SLUG.triton_name).exists()
    assert not list(tmp_path.glob(".*staging*"))


@pytest.mark.parametrize(
    ("task", "end2end", "output0", "compact"),
    [
        ("detect", False, [-1, 84, -1], True),
        ("segment", False, [-1, 116, -1], True),  # the mask coefficients travel with their anchor
        ("pose", False, [-1, 56, -1], True),
        ("obb", False, [-1, 20, -1], True),
        ("detect", True, [-1, 300, 6], False),  # final rows, not anchors: nothing to compact
        ("classify", False, [-1, 1000], False),
    ],
)
def test_compact_head_only_for_raw_one_to_many_heads(
    task: Any, end2end: bool, output0: list[int], compact: bool
) -> None:
    spec = ModelSpec(task=task, names={0: "a"}, imgsz=(640, 640), stride=32, dynamic=True, end2end=end2end)
    outputs = [("output0", output0)]
    if task == "segment":
        outputs.append(("output1", [-1, 32, -1, -1]))
    configs = render_configs("a~b~c", spec, {}, [("images", [-1, 3, -1, -1])], outputs, ServingOptions())
    local = text_format.Parse(configs["config.pbtxt"], mc.ModelConfig())
    native = text_format.Parse(configs["configs/onnxruntime.pbtxt"], mc.ModelConfig())
    declared = [(o.name, list(o.dims)) for o in local.output]
    assert (("trident_candidates", [output0[1], -1]) in declared) is compact
    assert ("conf_threshold" in [i.name for i in local.input]) is compact
    assert [o.name for o in native.output] == [name for name, _ in outputs]  # never in the native config
    # Ultralytics' client sorts the outputs by name and reads them by position: it must sort last
    assert sorted(o.name for o in local.output)[: len(outputs)] == [name for name, _ in outputs]


def test_onnx_runtime_threads_and_spinning_are_parameters_of_the_local_config() -> None:
    spec = ModelSpec(task="detect", names={0: "a"}, imgsz=(640, 640), stride=32, dynamic=True, end2end=False)
    inputs, outputs = [("images", [-1, 3, -1, -1])], [("output0", [-1, 5, -1])]
    options = ServingOptions(ort_threads=1, ort_spinning=False)
    local = text_format.Parse(
        render_configs("a", spec, {}, inputs, outputs, options)["config.pbtxt"], mc.ModelConfig()
    )
    assert local.parameters["ORT_INTRA_OP_THREADS"].string_value == "1"
    assert local.parameters["ORT_ALLOW_SPINNING"].string_value == "0"
    default = render_configs("a", spec, {}, inputs, outputs, ServingOptions())["config.pbtxt"]
    assert "ORT_" not in default


def test_a_class_map_output_is_declared_uint8_in_both_configs() -> None:
    spec = ModelSpec(
        task="semantic", names={0: "a", 1: "b"}, imgsz=(64, 64), stride=32, dynamic=False, end2end=False
    )
    inputs, outputs = [("images", [1, 3, 64, 64])], [("output0", [1, 64, 64])]
    configs = render_configs("a", spec, {}, inputs, outputs, ServingOptions(), {"output0": "UINT8"})
    for text in configs.values():
        config = text_format.Parse(text, mc.ModelConfig())
        assert [(o.name, o.data_type) for o in config.output] == [("output0", mc.TYPE_UINT8)]
    assert "trident_candidates" not in configs["config.pbtxt"]  # no raw head: no compact output


@pytest.mark.parametrize("dynamic", [False, True])
def test_both_configs_warm_the_model_up_with_a_blank_image_of_the_export_size(dynamic: bool) -> None:
    """Triton runs it on every instance before the model is ready, so no request pays for the first run."""
    spec = ModelSpec(
        task="detect", names={0: "a"}, imgsz=(320, 256), stride=32, dynamic=dynamic, end2end=False
    )
    hw = [-1, -1] if dynamic else [320, 256]
    inputs, outputs = [("images", [-1, 3, *hw])], [("output0", [-1, 5, -1])]
    configs = render_configs("a", spec, {}, inputs, outputs, ServingOptions())
    expected = {
        "config.pbtxt": ("images_u8", [320, 256, 3]),
        "configs/onnxruntime.pbtxt": ("images", [3, 320, 256]),
    }
    for path, (name, dims) in expected.items():
        config = text_format.Parse(configs[path], mc.ModelConfig())
        (warmup,) = config.model_warmup
        assert warmup.batch_size == 1 and list(warmup.inputs) == [name]
        assert list(warmup.inputs[name].dims) == dims and warmup.inputs[name].zero_data


def test_the_weights_folder_is_left_as_it_was(tmp_path: Path, yolo11n_pt: Path) -> None:
    """Nothing is written beside the weights (Ultralytics puts its ONNX there): they may be on a
    read-only mount, as the exporter container's /weights is."""
    weights = tmp_path / "weights"
    weights.mkdir()
    checkpoint = Path(shutil.copy(yolo11n_pt, weights))
    export_model(ExportRequest(checkpoint, SLUG, tmp_path / "repo"))
    assert list(weights.iterdir()) == [checkpoint]
