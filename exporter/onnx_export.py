"""Export with Ultralytics to ONNX and read back the metadata it embeds."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import Any

import onnx

from exporter.errors import ExportError


def export_onnx(model: Any, out_dir: Path, *, imgsz: int, dynamic: bool, nms: bool | None = None) -> Path:
    """Export `model` to `out_dir/model.onnx` (batch 1 when static, all axes free when dynamic).

    A static export is a batch-1 graph: Ultralytics has no batch-only dynamic option, and its
    dynamic graphs are not always right (YOLO26's dynamic export returns other boxes than the
    checkpoint in 8.4.190; the parity check catches that). Triton still queues and groups
    requests; the Python backend runs a fixed-batch graph once per request.
    """
    extra = {} if nms is None or model.task == "classify" else {"nms": nms}
    try:
        produced = Path(
            model.export(format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=True, verbose=False, **extra)
        )
    except Exception as exc:
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from None
    target = out_dir / "model.onnx"
    shutil.move(produced, target)
    return target


def read_metadata(onnx_path: Path) -> dict[str, Any]:
    """ONNX `metadata_props` parsed the way Ultralytics parses them (Python literals, not JSON)."""
    proto = onnx.load(str(onnx_path), load_external_data=False)
    meta: dict[str, Any] = {}
    for prop in proto.metadata_props:
        try:
            meta[prop.key] = ast.literal_eval(prop.value)
        except (ValueError, SyntaxError):
            meta[prop.key] = prop.value  # plain strings such as the description
    return meta


def io_shapes(onnx_path: Path) -> tuple[list[tuple[str, list[int]]], list[tuple[str, list[int]]]]:
    """Inputs and outputs as (name, dims) with symbolic dims as -1."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph

    def dims(value: Any) -> list[int]:
        return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]

    return [(i.name, dims(i)) for i in graph.input], [(o.name, dims(o)) for o in graph.output]


TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
}


def output_types(onnx_path: Path) -> dict[str, str]:
    """Each output's Triton data type (`FP32`, `UINT8`: a semantic model's class map, ...)."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    types = {}
    for output in graph.output:
        elem = output.type.tensor_type.elem_type
        if elem not in TRITON_TYPES:
            raise ExportError(f"output {output.name!r} has an unsupported ONNX type {elem}")
        types[output.name] = TRITON_TYPES[elem]
    return types
