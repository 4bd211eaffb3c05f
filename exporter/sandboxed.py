"""What runs inside the worker's sandbox (`exporter.sandbox`): `python -m exporter.sandboxed IN OUT`.

The same `export_model` as `trident export` (checkpoint check, ONNX export, parity gate against
`YOLO(weights).predict()`), into a repository inside the scratch folder; then one JSON report in
OUT: the ONNX's path relative to the scratch folder, the task, the raw check's figures and what
`YOLO(weights).predict()` found on the sample (the reference the worker compares the ONNX with
again, outside), or the error. Exit status 0 only for a passed export.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from core.slug import Slug
from exporter.errors import ExportError
from exporter.export import ExportRequest, export_model

SANDBOX_SLUG = Slug.parse("sandbox/upload/model")


def _report(out: Path, body: dict[str, object]) -> None:
    """Written whole, then renamed into place: the checkpoint's forked copies of this process write
    theirs too and are killed mid-write when the exporter ends, so the worker reads one whole report."""
    part = out / f".report.{os.getpid()}"
    part.write_text(json.dumps(body))
    part.replace(out / "report.json")


def main(argv: list[str]) -> int:
    weights, out = Path(argv[0]), Path(argv[1])
    nms = {"--nms=true": True, "--nms=false": False}.get(argv[2]) if len(argv) > 2 else None
    request = ExportRequest(weights, SANDBOX_SLUG, out.parent / "repository", nms=nms)
    try:
        result = export_model(request, Console(stderr=True))
    except ExportError as exc:
        _report(out, {"error": str(exc)})
        return 3
    except Exception as exc:  # whatever the checkpoint's own code raised
        _report(out, {"error": f"the export failed: {type(exc).__name__}: {exc}"[:1000]})
        return 4
    parity = result.parity
    raw = {
        "outputs_checked": parity.raw_outputs_checked,
        "max_abs_diff": parity.max_abs_diff,
        "rtol": parity.raw_rtol,
    }
    onnx = (result.path / "model.onnx").relative_to(out.parent)
    body: dict[str, object] = {"onnx": str(onnx), "raw": raw, "task": result.spec.task}
    if parity.ultralytics is not None:  # the gate's own reference: no second predict
        body["reference"] = dataclasses.asdict(parity.ultralytics)
    _report(out, body)
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    if status:  # the report is written: end now, without the interpreter's (and torch's) teardown,
        sys.stderr.flush()  # which a checkpoint's forked copies, all ending here, would starve
        os._exit(status)
    raise SystemExit(status)
