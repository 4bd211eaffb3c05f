"""The export pipeline: checkpoint -> ONNX -> parity check -> Triton model folder -> publish."""

from __future__ import annotations

import hashlib
import py_compile
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from core.modelspec import ModelSpec
from core.slug import Slug
from exporter.checkpoint import load_checkpoint
from exporter.errors import ExportError
from exporter.examples import EXAMPLES_DIR, copy_examples
from exporter.onnx_export import export_onnx, io_shapes, output_types, read_metadata
from exporter.parity import ParityReport, check_parity
from exporter.repository import next_version, publish, staging_dir
from exporter.triton_config import ServingOptions, render_configs

BACKEND_MODEL = Path(__file__).parent / "backend" / "model.py"


@dataclass(frozen=True)
class ExportRequest:
    weights: Path
    slug: Slug
    repository: Path
    imgsz: int = 640
    dynamic: bool = False
    nms: bool | None = None  # Ultralytics' export flag: None raw head, False NMS-free head, True NMS in graph
    visibility: Literal["private", "public"] = "private"
    sample_image: Path | None = None  # defaults to Ultralytics' bus.jpg
    examples: Path | None = None  # a folder of example images the Test tab shows (`exporter.examples`)
    options: ServingOptions = field(default_factory=ServingOptions)


@dataclass(frozen=True)
class ExportResult:
    triton_name: str
    version: int
    path: Path
    spec: ModelSpec
    parity: ParityReport


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def spec_from_metadata(meta: dict[str, Any], request: ExportRequest, checksum: str) -> ModelSpec:
    """Everything the frontend needs, decided from the model's own metadata (never its name)."""
    args = meta.get("args") or {}
    kpt = meta.get("kpt_shape")
    return ModelSpec(
        task=meta["task"],
        names={int(k): str(v) for k, v in meta["names"].items()},
        imgsz=(int(meta["imgsz"][0]), int(meta["imgsz"][1])),
        stride=int(meta["stride"]),
        dynamic=request.dynamic,
        end2end=bool(meta.get("end2end")) or bool(args.get("nms")),
        kpt_shape=(int(kpt[0]), int(kpt[1])) if kpt else None,
        owner=request.slug.owner,
        visibility=request.visibility,
        provenance={
            "source_sha256": checksum,
            "source_name": request.weights.name,
            "ultralytics_version": str(meta.get("version", "")),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def export_model(request: ExportRequest, console: Console | None = None) -> ExportResult:
    """Run the whole export; raise `ExportError` (nothing published) on any failure."""
    console = console or Console(stderr=True)
    name = request.slug.triton_name
    with console.status("loading checkpoint") as status, tempfile.TemporaryDirectory() as scratch:
        # Ultralytics writes its ONNX beside the checkpoint it loaded: a copy, so that the weights'
        # folder may be read-only (the exporter container's /weights) and is left as it was
        model = load_checkpoint(Path(shutil.copy(request.weights, scratch)))
        console.log(f"loaded {request.weights.name}: task {model.task}")
        with staging_dir(request.repository) as stage:
            version = next_version(request.repository / name)
            version_dir = stage / name / str(version)
            version_dir.mkdir(parents=True)
            status.update("exporting ONNX")
            onnx_path = export_onnx(
                model, version_dir, imgsz=request.imgsz, dynamic=request.dynamic, nms=request.nms
            )
            meta = read_metadata(onnx_path)
            spec = spec_from_metadata(meta, request, _sha256(request.weights))
            shape = "dynamic" if spec.dynamic else "static"
            console.log(f"exported ONNX at {spec.imgsz[1]}x{spec.imgsz[0]} ({shape})")
            status.update("checking parity with YOLO(weights).predict()")
            sample = request.sample_image or default_sample()
            parity = check_parity(request.weights, onnx_path, spec, sample, request.nms)
            console.log(f"parity ok: {parity.summary()}")
            status.update("publishing")
            path = assemble(stage, onnx_path, request, meta, spec)
    console.log(f"published {request.slug} as Triton model {name!r} version {version}")
    return ExportResult(name, version, path, spec, parity)


def assemble(
    stage: Path, onnx_path: Path, request: ExportRequest, meta: dict[str, Any], spec: ModelSpec
) -> Path:
    """The trusted tail of an export: the backend, examples and configs written beside a checked
    `<stage>/<name>/<version>/model.onnx`, then published; returns the published version folder.
    (The worker runs this outside its sandbox, on the ONNX the sandbox made.)"""
    name = request.slug.triton_name
    version_dir = onnx_path.parent
    shutil.copy(BACKEND_MODEL, version_dir / "model.py")
    if request.examples is not None:
        copy_examples(request.examples, version_dir / EXAMPLES_DIR)
    # compiled now: a __pycache__ appearing later would look like a change to Triton's poller
    py_compile.compile(str(version_dir / "model.py"), doraise=True)
    inputs, outputs = io_shapes(onnx_path)
    types = output_types(onnx_path)
    configs = render_configs(name, spec, meta, inputs, outputs, request.options, types)
    for rel, text in configs.items():
        (stage / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage / name / rel).write_text(text)
    return publish(stage / name, request.repository, name, int(version_dir.name))


def default_sample() -> Path:
    """The parity gate's image: Ultralytics' bus.jpg."""
    from ultralytics.utils import ASSETS

    return Path(ASSETS) / "bus.jpg"


__all__ = [
    "ExportError",
    "ExportRequest",
    "ExportResult",
    "assemble",
    "default_sample",
    "export_model",
    "spec_from_metadata",
]
