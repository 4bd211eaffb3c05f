"""Open a user's weights as an Ultralytics model, with one clear error for each way it can fail."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from exporter.errors import ExportError

SUPPORTED_TASKS = ("detect", "segment", "pose", "classify", "obb", "semantic", "depth")
MAX_SEMANTIC_CLASSES = 256  # the class map is uint8 (ONNX exports emit int32 beyond that)


def load_checkpoint(weights: Path) -> Any:
    """Return `ultralytics.YOLO(weights)` for a supported checkpoint, or raise `ExportError`."""
    if not weights.is_file():
        raise ExportError(f"weights file not found: {weights}")
    if weights.suffix != ".pt" or not zipfile.is_zipfile(weights):
        raise ExportError(f"{weights} is not an Ultralytics checkpoint (expected a .pt file saved by torch)")
    from ultralytics import YOLO  # type: ignore[attr-defined, unused-ignore]  # heavy: only when exporting

    try:
        model = YOLO(str(weights))
    except Exception as exc:  # ultralytics raises many types for a foreign file
        raise ExportError(
            f"{weights} is not an Ultralytics checkpoint: {type(exc).__name__}: {exc}"
        ) from None
    task = getattr(model, "task", None)
    if task not in SUPPORTED_TASKS:
        raise ExportError(f"task {task!r} is not supported yet (supported: {', '.join(SUPPORTED_TASKS)})")
    if task == "semantic" and len(model.names) > MAX_SEMANTIC_CLASSES:
        raise ExportError(
            f"semantic models with more than {MAX_SEMANTIC_CLASSES} classes are not supported "
            f"(this one has {len(model.names)}): the class map is served as uint8"
        )
    return model
