"""`trident worker`: runs the export jobs that uploads queue (`store.uploads`), one at a time.

A job: take it with a lease (renewed by a thread while the job runs), export the model's uploaded
checkpoint inside the sandbox (`exporter.sandbox`: the same exporter and parity gate as
`trident export`), then, outside it, run the gate's decoded check again on the ONNX it made
(against the reference results it reported), write the configs and the backend beside it and
publish a new version into the repository (`exporter.export.assemble`: atomic, so the running
Triton and frontend pick it up with no restart). Any failure is the job's `error`, in words;
nothing is published and the scratch folder is removed either way.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Protocol

from core.modelspec import MAP_TASKS, ModelSpec
from core.settings import Settings
from core.slug import Slug
from exporter.errors import ExportError
from exporter.export import ExportRequest, assemble, default_sample, spec_from_metadata
from exporter.onnx_export import read_metadata
from exporter.parity import ParityReport, check_map_parity, compare_results
from exporter.repository import next_version, staging_dir
from exporter.sandbox import Limits, SandboxOutput, export_in_sandbox
from exporter.triton_config import ServingOptions
from store.uploads import JobRow, UploadStore

log = logging.getLogger("trident.worker")


def limits(settings: Settings) -> Limits:
    return Limits(
        memory_bytes=settings.export_memory_bytes,
        cpu_s=settings.export_cpu_s,
        processes=settings.export_processes,
        cpus=settings.export_cpus,
        timeout_s=settings.export_timeout_s,
        file_bytes=4 * settings.upload_max_bytes + (1 << 30),  # the ONNX, ONNX Runtime's copies
        uid=settings.export_sandbox_uid,
    )


class Lease:
    """Renews a job's lease every third of it until closed; `lost` once the job is not ours."""

    def __init__(self, store: UploadStore, job_id: str, owner: str, lease_s: float) -> None:
        self.store, self.job_id, self.owner, self.lease_s = store, job_id, owner, lease_s
        self.progress, self.step = 0, "starting"
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()

    def say(self, progress: int, step: str) -> None:
        self.progress, self.step = progress, step
        self._beat()

    def _beat(self) -> None:
        try:
            if not self.store.renew(self.job_id, self.owner, self.lease_s, self.progress, self.step):
                self.lost = True
        except Exception:  # the database may be briefly away: the next beat tries again
            log.exception("renewing the lease of %s failed", self.job_id)

    def _renew(self) -> None:
        while not self._done.wait(self.lease_s / 3):
            self._beat()

    def close(self) -> None:
        self._done.set()
        self._thread.join()


def _parity(onnx_path: Path, spec: ModelSpec, out: SandboxOutput) -> ParityReport:
    """The gate's decoded check again, here, on the ONNX that will be published: against the
    reference the sandbox's `YOLO(weights).predict()` found (maps: against `YOLO(<the ONNX>)`)."""
    sample = default_sample()
    if spec.task in MAP_TASKS:
        return check_map_parity(onnx_path, spec, sample, out.raw)
    if out.reference is None:
        raise ExportError("the sandboxed export reported no parity reference")
    return compare_results(onnx_path, spec, sample, out.reference, None, out.raw)


class Stopping(Protocol):
    """`threading.Event` or `trident.stopping.Stop`."""

    def is_set(self) -> bool: ...
    def wait(self, timeout: float, /) -> bool: ...


class Worker:
    def __init__(self, settings: Settings, store: UploadStore, name: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"

    def run_once(self) -> JobRow | None:
        """Take and run one job; the job as it ended, or None when none was waiting."""
        job = self.store.claim(self.name, self.settings.export_lease_s)
        if job is None:
            return None
        lease = Lease(self.store, job.id, self.name, self.settings.export_lease_s)
        try:
            self._run(job, lease)
        except ExportError as exc:
            log.info("export %s failed: %s", job.id, exc)
            self.store.fail(job.id, self.name, str(exc))
        except Exception as exc:  # a bug of ours: the job fails with the type, the log keeps the trace
            log.exception("export %s failed", job.id)
            self.store.fail(job.id, self.name, f"the export failed unexpectedly ({type(exc).__name__})")
        finally:
            lease.close()
        return self.store.job(job.id)

    def run(self, stop: Stopping) -> None:
        """Jobs until `stop` is set (a job under way is finished first; one killed midway is taken
        again by the next worker once its lease ends)."""
        while not stop.is_set():
            try:
                if self.run_once() is not None:
                    continue
            except Exception:  # the database may be briefly away
                log.exception("looking for export jobs failed")
            stop.wait(self.settings.export_poll_s)

    def _run(self, job: JobRow, lease: Lease) -> None:
        model = self.store.model_by_id(job.model_id)
        if model is None or model.checkpoint is None:
            raise ExportError("the model has no uploaded checkpoint")
        project = self.store.project(model.owner, model.project)
        checkpoint = Path(model.checkpoint)
        work = self.settings.uploads_dir / "scratch"
        work.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{job.id}-", dir=work))
        try:
            lease.say(10, "exporting in the sandbox")
            out = export_in_sandbox(
                checkpoint, folder / "sandbox", limits(self.settings), folder / "model.onnx"
            )
            if lease.lost:
                raise ExportError("the job was cancelled or taken by another worker; nothing published")
            request = ExportRequest(
                weights=checkpoint,
                slug=Slug.parse(model.slug),
                repository=self.settings.model_repository.resolve(),
                visibility="public" if project is not None and project.visibility == "public" else "private",
                options=ServingOptions(execution_env=str(self.settings.runtime_dir)),
            )
            name = request.slug.triton_name
            with staging_dir(request.repository) as stage:
                version = next_version(request.repository / name)
                onnx_path = stage / name / str(version) / "model.onnx"
                onnx_path.parent.mkdir(parents=True)
                shutil.move(out.onnx, onnx_path)
                meta = read_metadata(onnx_path)
                spec = spec_from_metadata(meta, request, model.checkpoint_sha256 or "")
                if spec.task != out.task or (model.task and spec.task != model.task):
                    raise ExportError(f"the checkpoint is a {out.task} model, its ONNX says {spec.task}")
                lease.say(80, "checking parity")
                parity = _parity(onnx_path, spec, out)
                lease.say(90, "publishing")
                path = assemble(stage, onnx_path, request, meta, spec)
            exported = path / "model.onnx"
            size = exported.stat().st_size
            self.store.complete(job.id, self.name, version, str(exported), size, parity.figures())
            log.info("export %s published %s version %d", job.id, model.slug, version)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
