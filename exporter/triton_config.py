"""Render the two Triton configs of a model folder.

- `config.pbtxt`: the Python backend wrapping ONNX Runtime, for the local CPU runtime.
- `configs/onnxruntime.pbtxt`: the native `onnxruntime_onnx` backend, for the NGC container
  (`tritonserver --model-config-name=onnxruntime`).

Both carry the same inputs, outputs, batching and parameters: `trident` (the `ModelSpec` JSON the
frontend reads) and `metadata` (the Ultralytics dict, as its own Triton client expects it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from core.modelspec import (
    CANDIDATES_OUTPUT,
    CONF_INPUT,
    RAW_HEAD_TASKS,
    SPEC_PARAMETER,
    U8_INPUT,
    ModelSpec,
)

NATIVE_CONFIG_NAME = "onnxruntime"


@dataclass(frozen=True)
class ServingOptions:
    max_batch: int = 8
    instances: int = 1
    queue_delay_us: int = 0  # no wait for a lone request; requests queued meanwhile still batch
    u8_input: bool = True  # the Python-backend config also takes the uint8 image (see `U8_INPUT`)
    compact_output: bool = True  # ... and returns only the candidate anchors (`CANDIDATES_OUTPUT`)
    execution_env: str = ""  # Python-backend runtime env (local CPU runtime only)
    ort_threads: int = 0  # ONNX Runtime intra-op threads in the Python backend (0: its default)
    ort_spinning: bool | None = None  # whether idle intra-op threads spin (None: ONNX Runtime's default, yes)


def _tensor(name: str, dims: list[int], spec_dtype: str) -> dict[str, Any]:
    return {"name": name, "data_type": getattr(mc, f"TYPE_{spec_dtype}"), "dims": dims}


def _base_config(
    name: str,
    spec: ModelSpec,
    metadata: dict[str, Any],
    inputs: list[tuple[str, list[int]]],
    outputs: list[tuple[str, list[int]]],
    max_batch: int,
    queue_delay_us: int,
    output_types: dict[str, str],
) -> mc.ModelConfig:
    """`max_batch == 0` declares the batch axis as part of the dims (a fixed-batch graph)."""
    config = mc.ModelConfig(name=name, max_batch_size=max_batch)
    h, w = spec.imgsz
    for in_name, in_dims in inputs:
        dims = [in_dims[1], -1, -1] if spec.dynamic else [in_dims[1], h, w]
        config.input.add(**_tensor(in_name, dims if max_batch else [1, *dims], spec.input_dtype))
    for out_name, out_dims in outputs:
        dtype = output_types.get(out_name, "FP32")
        config.output.add(**_tensor(out_name, out_dims[1:] if max_batch else out_dims, dtype))
    if max_batch > 1:
        config.dynamic_batching.SetInParent()  # batches whatever queued while the instance was busy
        config.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    config.parameters[SPEC_PARAMETER].string_value = spec.to_json()
    config.parameters["metadata"].string_value = str(metadata)
    return config


def add_warmup(config: mc.ModelConfig, input_name: str, spec: ModelSpec) -> None:
    """One blank image through `input_name` on every instance while Triton loads the model, so
    its first request is not the one that pays for ONNX Runtime's first run (allocations, kernel
    choices). Dynamic axes get the export size."""
    tensor = next(t for t in config.input if t.name == input_name)
    h, w = spec.imgsz
    sizes = iter((h, w))
    dims = [d if d != -1 else next(sizes) for d in tensor.dims]
    warmup = config.model_warmup.add(name="blank_image", batch_size=1)
    warmup.inputs[input_name].data_type = tensor.data_type
    warmup.inputs[input_name].dims.extend(dims)
    warmup.inputs[input_name].zero_data = True


def has_raw_head(spec: ModelSpec, outputs: list[tuple[str, list[int]]]) -> bool:
    """A one-to-many head `output0 (batch, 4 + nc + extra, anchors)`, filtered by score in NMS."""
    return (
        spec.task in RAW_HEAD_TASKS
        and not spec.end2end
        and bool(outputs)
        and outputs[0][0] == "output0"
        and len(outputs[0][1]) == 3
        and outputs[0][1][1] > 0
    )


def render_configs(
    name: str,
    spec: ModelSpec,
    metadata: dict[str, Any],
    inputs: list[tuple[str, list[int]]],
    outputs: list[tuple[str, list[int]]],
    options: ServingOptions,
    output_types: dict[str, str] | None = None,
) -> dict[str, str]:
    """Relative path -> pbtxt text for both configs; outputs are FP32 unless `output_types` says
    otherwise (a semantic model's class map is UINT8)."""
    types = output_types or {}
    local = _base_config(
        name, spec, metadata, inputs, outputs, options.max_batch, options.queue_delay_us, types
    )
    local.backend = "python"
    if options.u8_input:
        # either input may be sent: float32 `images` (Ultralytics' client) or the uint8 image (Trident)
        h, w = spec.imgsz
        hwc = [-1, -1, 3] if spec.dynamic else [h, w, 3]
        for tensor in local.input:
            tensor.optional = True
        local.input.add(
            name=U8_INPUT,
            data_type=mc.TYPE_UINT8,
            dims=hwc if options.max_batch else [1, *hwc],
            optional=True,
        )
    if options.compact_output and has_raw_head(spec, outputs):
        batched = (lambda dims: dims) if options.max_batch else (lambda dims: [1, *dims])
        local.input.add(name=CONF_INPUT, data_type=mc.TYPE_FP32, dims=batched([1]), optional=True)
        channels = outputs[0][1][1]  # output0 (batch, 4 + nc + extra, anchors)
        local.output.add(name=CANDIDATES_OUTPUT, data_type=mc.TYPE_FP32, dims=batched([channels, -1]))
    local.instance_group.add(count=options.instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    add_warmup(local, U8_INPUT if options.u8_input else local.input[0].name, spec)
    if options.execution_env:
        local.parameters["EXECUTION_ENV_PATH"].string_value = options.execution_env
    if options.ort_threads:
        local.parameters["ORT_INTRA_OP_THREADS"].string_value = str(options.ort_threads)
    if options.ort_spinning is not None:
        local.parameters["ORT_ALLOW_SPINNING"].string_value = "1" if options.ort_spinning else "0"

    # Triton's ONNX Runtime backend checks shapes against the graph: a batch-1 graph is not batchable
    fixed_batch = any(dims[0] != -1 for _, dims in inputs)
    native_batch = 0 if fixed_batch else options.max_batch
    native = _base_config(name, spec, metadata, inputs, outputs, native_batch, options.queue_delay_us, types)
    native.platform = "onnxruntime_onnx"
    native.default_model_filename = "model.onnx"
    native.instance_group.add(count=options.instances, kind=mc.ModelInstanceGroup.KIND_GPU)
    add_warmup(native, native.input[0].name, spec)
    return {
        "config.pbtxt": text_format.MessageToString(local),
        f"configs/{NATIVE_CONFIG_NAME}.pbtxt": text_format.MessageToString(native),
    }
