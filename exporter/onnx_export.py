"""Export with Ultralytics to ONNX and read back the metadata it embeds."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import Any

import onnx

from exporter.errors import ExportError


def export_onnx(model: Any, out_dir: Path, *, imgsz: int, dynamic: bool) -> Path:
    """Export `model` to `out_dir/model.onnx` with a free batch axis.

    Ultralytics has no batch-only dynamic option, so the graph is always exported with dynamic axes
    (which also frees H and W) and Triton batches requests along the first axis. For a static model
    the metadata is then rewritten to say `dynamic: False`: that is how the model is served (square
    letterbox at the export size) and what `YOLO(model.onnx)` and Ultralytics' Triton client read.
    """
    try:
        produced = Path(model.export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, verbose=False))
    except Exception as exc:
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from None
    target = out_dir / "model.onnx"
    shutil.move(produced, target)
    if not dynamic:
        proto = onnx.load(str(target))
        meta = {p.key: p.value for p in proto.metadata_props}
        args = ast.literal_eval(meta["args"])
        args["dynamic"] = False
        for prop in proto.metadata_props:
            if prop.key == "args":
                prop.value = str(args)
        onnx.save(proto, str(target))
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
