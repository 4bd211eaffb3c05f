"""The TensorRT production path: a `model.plan` built from the exported ONNX, plus its Triton config.

A TensorRT plan only runs on the GPU model and TensorRT version that built it, so it is built on
the serving host (`trident export ... --format engine`), after the usual parity-checked ONNX
export. The ONNX is exported with free axes so that one plan covers batches 1..max_batch and, for
dynamic models, every image size the API accepts (one optimisation profile). The model folder
gains `<version>/model.plan` and `configs/tensorrt.pbtxt` (platform `tensorrt_plan`), served with
`tritonserver --model-config-name=tensorrt`.

Ultralytics' own engine export prefixes the plan with its metadata (4-byte little-endian length,
then JSON); Triton cannot deserialize that, so `strip_metadata_header` removes it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from google.protobuf import text_format
from numpy.typing import NDArray
from tritonclient.grpc import model_config_pb2 as mc

from core.modelspec import SPEC_PARAMETER, ModelSpec
from exporter.errors import ExportError
from exporter.triton_config import NATIVE_CONFIG_NAME
from postprocess.letterbox import model_input

ENGINE_CONFIG_NAME = "tensorrt"
PLAN_NAME = "model.plan"
MAX_API_IMGSZ = 1280  # the largest `imgsz` a request may ask for
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class EngineOptions:
    fp16: bool = True
    int8: bool = False
    calibration: Path | None = None  # a folder of representative images, for INT8
    workspace_gib: float = 4.0


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: (min, opt, max) input shapes, NCHW."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]


def profile_for(spec: ModelSpec, max_batch: int) -> Profile:
    """Batches 1..max_batch; a static model's own size, or a dynamic one's whole request range."""
    h, w = spec.imgsz
    opt_batch = max(1, max_batch // 2)
    if not spec.dynamic:
        return Profile((1, 3, h, w), (opt_batch, 3, h, w), (max_batch, 3, h, w))
    top = max(MAX_API_IMGSZ, h, w)
    return Profile((1, 3, spec.stride, spec.stride), (opt_batch, 3, h, w), (max_batch, 3, top, top))


def missing_requirements() -> list[str]:
    """What this host lacks to build a plan (empty: it can)."""
    missing = []
    if not _has_nvidia_gpu():
        missing.append("an NVIDIA GPU (nvidia-smi lists none)")
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("the tensorrt Python package (pip install tensorrt)")
    return missing


def require_engine_host() -> None:
    missing = missing_requirements()
    if missing:
        raise ExportError(
            "--format engine builds the plan on the GPU that will serve it; this host lacks "
            + " and ".join(missing)
        )


def _has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "GPU " in done.stdout


def strip_metadata_header(data: bytes) -> tuple[bytes, dict[str, Any] | None]:
    """(plan, metadata): Ultralytics' `<int32 little-endian length><JSON>` prefix removed if present.

    A bare TensorRT plan starts with its own magic, which read as a length points past the end of
    the file (or is not followed by a JSON object), so it comes back unchanged with `None`.
    """
    if len(data) >= 4:
        length = int.from_bytes(data[:4], "little", signed=True)
        if 0 < length <= len(data) - 4:
            try:
                meta = json.loads(data[4 : 4 + length].decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                meta = None
            if isinstance(meta, dict):
                return data[4 + length :], meta
    return data, None


def strip_plan_file(path: Path) -> dict[str, Any] | None:
    """Rewrite `path` without Ultralytics' header (atomically); returns the metadata it held."""
    plan, meta = strip_metadata_header(path.read_bytes())
    if meta is not None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(plan)
        os.replace(tmp, path)
    return meta


def tensorrt_config(native_config: str, precision: str, version: int) -> str:
    """`configs/tensorrt.pbtxt` from the native ONNX Runtime config: same I/O, batching, parameters.

    Pinned to the version that has the plan: a later export whose build fails (or that is ONNX
    only) leaves TensorRT serving this one instead of a folder without `model.plan`.
    """
    config = mc.ModelConfig()
    text_format.Parse(native_config, config)
    config.platform = "tensorrt_plan"
    config.backend = ""
    config.default_model_filename = PLAN_NAME
    config.version_policy.specific.versions[:] = [version]
    config.parameters["trident_precision"].string_value = precision
    return str(text_format.MessageToString(config))


def add_engine(version_dir: Path, max_batch: int, options: EngineOptions) -> Path:
    """Build `<version>/model.plan` from its `model.onnx` and write `configs/tensorrt.pbtxt`."""
    require_engine_host()
    model_dir = version_dir.parent
    native = (model_dir / "configs" / f"{NATIVE_CONFIG_NAME}.pbtxt").read_text()
    parsed = mc.ModelConfig()
    text_format.Parse(native, parsed)
    spec = ModelSpec.from_json(parsed.parameters[SPEC_PARAMETER].string_value)
    profile = profile_for(spec, max(1, max_batch))
    plan = version_dir / PLAN_NAME
    tmp = version_dir / f".{PLAN_NAME}.tmp"
    tmp.write_bytes(build_plan(version_dir / "model.onnx", profile, options, spec))
    strip_plan_file(tmp)  # a no-op for our own builds; kept for plans made by Ultralytics
    os.replace(tmp, plan)
    precision = "int8" if options.int8 else "fp16" if options.fp16 else "fp32"
    config = model_dir / "configs" / f"{ENGINE_CONFIG_NAME}.pbtxt"
    config.with_name(f".{config.name}.tmp").write_text(
        tensorrt_config(native, precision, int(version_dir.name))
    )
    os.replace(config.with_name(f".{config.name}.tmp"), config)
    return plan


def build_plan(onnx_path: Path, profile: Profile, options: EngineOptions, spec: ModelSpec) -> bytes:
    """Serialize a TensorRT engine for `onnx_path` (needs the GPU and the tensorrt package)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse the ONNX: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
    trt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        trt_profile.set_shape(network.get_input(i).name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(trt_profile)
    if options.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if options.int8:
        if options.calibration is None:
            raise ExportError("--int8 needs --calibration DIR with representative images")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_calibration_profile(trt_profile)
        config.int8_calibrator = _calibrator(trt, options.calibration, spec, profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine (see its log above)")
    return bytes(serialized)


def calibration_batches(folder: Path, spec: ModelSpec, batch: int) -> Iterator[NDArray[np.float32]]:
    """Letterboxed NCHW batches of the images in `folder`, exactly as the frontend prepares requests."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ExportError(f"no calibration images in {folder}")
    h, w = spec.imgsz
    tensors = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        # a fixed square size: one batch shape for the whole calibration
        tensor, _ = model_input(
            np.asarray(image, np.uint8), export_hw=(h, w), stride=spec.stride, dynamic=False, imgsz=max(h, w)
        )
        tensors.append(tensor[0])
        if len(tensors) == batch:
            yield np.stack(tensors)
            tensors = []
    if tensors:  # a short last batch, padded with its own last image (TensorRT wants full ones)
        yield np.stack(tensors + [tensors[-1]] * (batch - len(tensors)))


def _calibrator(trt: Any, folder: Path, spec: ModelSpec, profile: Profile) -> Any:
    """An entropy calibrator feeding letterboxed images through device memory held by torch."""
    import torch

    batch = profile.opt[0]

    class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.batches = calibration_batches(folder, spec, batch)
            self.current: torch.Tensor | None = None

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            array = next(self.batches, None)
            if array is None:
                return None
            self.current = torch.from_numpy(array).cuda().contiguous()
            return [int(self.current.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return None  # always calibrate from the images given

        def write_calibration_cache(self, cache: bytes) -> None:
            pass

    return Calibrator()
