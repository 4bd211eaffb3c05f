"""Weights through the API, in the official SDK's shapes (what `ul cloud predict model=best.pt` and
`ul cloud export model=best.pt format=onnx` call): `account.summary`, `projects.retrieve` /
`create` / `list`, `models.create`, `upload.signed_url` + the `PUT` to its URL, `upload.complete`,
`models.files`, `models.delete`, and `exports.create` / `retrieve` / `list` / `delete` with a
signed download URL.

A caller sees only its own projects and models (another owner's: 404). Creating models, uploading
and exporting need the `export` scope. The upload URL is Trident's own: single use, expiring
(`TRIDENT_UPLOAD_URL_TTL_S`), at most the announced size and `TRIDENT_UPLOAD_MAX_BYTES`; its
bytes go to a staging folder under the data folder, never into the model repository, and are
only moved beside it (still outside the repository) once `upload.complete` checked their size and
digest. Completing queues an export job that `trident worker` runs in its sandbox.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import shutil
import time
import zipfile
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import anyio.to_thread
from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from core.digests import same_text
from core.modelspec import Task
from core.settings import MB
from core.slug import InvalidSlugError, Slug
from frontend.deps import ExportCallerDep, KeyHolderDep, Services, ServicesDep, SettingsDep
from frontend.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    ServingError,
)
from frontend.formats import json_response
from frontend.schemas import error_docs
from store.clock import iso
from store.keys import Principal
from store.uploads import (
    Exists,
    JobRow,
    ModelRow,
    ProjectRow,
    UploadRefused,
    UploadStore,
    deployments_serving,
    model_status,
)

router = APIRouter(responses=error_docs(400, 401, 403, 404, 409, 410, 413, 429, 503))
UPLOAD_PATH = "/api/uploads/"  # the signed PUT targets: `BodyLimit` leaves their size to the route
TASKS = get_args(Task)  # what Trident serves
FORMATS = ("onnx",)  # what a worker exports here (TensorRT plans: `trident export --format engine`)
DOWNLOAD_TTL_S = 3600
PART = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
SlugPart = Annotated[str, Field(pattern=f"^{PART.pattern}$")]  # declared, so the schema says it


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# --- account and projects


@router.get("/api/account/summary", summary="Who this key is (the SDK's account.summary)")
async def account_summary(caller: KeyHolderDep, services: ServicesDep) -> Response:
    store = services.uploads
    projects = await anyio.to_thread.run_sync(store.projects, caller.user)
    models = await anyio.to_thread.run_sync(store.models, caller.user)
    plan = caller.plan if caller.plan in ("free", "pro", "enterprise") else "enterprise"
    return json_response(
        {
            "username": caller.user,
            "name": caller.user,
            "accountType": "personal",
            "plan": plan,
            "creditsCents": 0,
            "counts": {"projects": len(projects), "datasets": 0, "models": len(models)},
            "teams": [],
        }
    )


def _project_item(p: ProjectRow, models: int) -> dict[str, Any]:
    return {
        "id": p.id,
        "owner": p.owner,
        "project": p.project,
        "name": p.name,
        "visibility": p.visibility,
        "modelCount": models,
        "starCount": 0,
        "isStarred": False,
        "createdAt": iso(p.created_at),
        "updatedAt": iso(p.created_at),
    }


def _own_project(store: UploadStore, caller: Principal, owner: str, project: str) -> ProjectRow:
    found = store.project(owner, project) if owner == caller.user else None
    if found is None:
        raise NotFound(f"no project {owner}/{project}")
    return found


@router.get("/api/projects/{owner}", summary="Your projects (the SDK's projects.list)")
async def list_projects(
    owner: str, caller: KeyHolderDep, services: ServicesDep, settings: SettingsDep
) -> Response:
    store = services.uploads
    found = await anyio.to_thread.run_sync(store.projects, owner) if owner == caller.user else []
    models = await anyio.to_thread.run_sync(store.models, owner) if found else []
    items = [_project_item(p, sum(m.project == p.project for m in models)) for p in found]
    return json_response({"projects": items, "total": len(items), "region": settings.region})


@router.get("/api/projects/{owner}/{project}", summary="One of your projects (the SDK's projects.retrieve)")
async def retrieve_project(owner: str, project: str, caller: KeyHolderDep, services: ServicesDep) -> Response:
    store = services.uploads
    found = await anyio.to_thread.run_sync(_own_project, store, caller, owner, project)
    models = await anyio.to_thread.run_sync(store.models, owner, project)
    items = []
    for m in models:
        jobs = await anyio.to_thread.run_sync(store.jobs, m.id)
        items.append(
            {
                "id": m.id,
                "model": m.model,
                "name": m.name,
                **({"task": m.task} if m.task else {}),
                "status": model_status(jobs),
                "epochCount": 0,
                **({"file": {"size": m.checkpoint_bytes}} if m.checkpoint_bytes else {}),
                "hasWeights": m.checkpoint is not None,
                "createdAt": iso(m.created_at),
                "updatedAt": iso(m.updated_at),
            }
        )
    project_item = {**_project_item(found, len(models)), "metadata": {}}
    return json_response({"project": project_item, "models": items, "isOwner": True})


class NewProject(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the SDK sends tags, license, ...: not kept here

    project: SlugPart
    name: str = ""
    visibility: Literal["public", "private"] = "private"
    owner: str | None = None


@router.post("/api/projects", status_code=201, summary="Create a project (the SDK's projects.create)")
async def create_project(
    caller: KeyHolderDep, services: ServicesDep, settings: SettingsDep, body: Annotated[NewProject, Body()]
) -> Response:
    if body.owner not in (None, caller.user):
        raise Forbidden(f"this key creates projects of {caller.user!r} only")
    slug = body.project  # its pattern is the body's schema (`SlugPart`): refused with a 400 before here
    try:
        made = await anyio.to_thread.run_sync(
            services.uploads.create_project, caller.user, slug, body.name or slug, body.visibility
        )
    except Exists:
        raise Conflict(f"you have a project {slug!r} already") from None
    return json_response(
        {"id": made.id, "owner": made.owner, "project": made.project, "region": settings.region}, 201
    )


# --- models


class NewModel(BaseModel):
    model_config = ConfigDict(extra="ignore")  # trainArgs, metrics, ...: not kept here

    project: str
    owner: str | None = None
    model: SlugPart | None = None
    name: str = ""
    task: str | None = None


@router.post("/api/models", status_code=201, summary="Create a model to upload weights to (scope export)")
async def create_model(
    caller: ExportCallerDep, services: ServicesDep, settings: SettingsDep, body: Annotated[NewModel, Body()]
) -> Response:
    if body.owner not in (None, caller.user):
        raise Forbidden(f"this key creates models of {caller.user!r} only")
    if body.task is not None and body.task not in TASKS:
        raise InvalidRequest(f"task {body.task!r} cannot be served here; Trident serves {', '.join(TASKS)}")
    store = services.uploads
    await anyio.to_thread.run_sync(_own_project, store, caller, caller.user, body.project)
    model = body.model or "model"  # `SlugPart`, like the project
    try:
        Slug.from_parts(caller.user, body.project, model)
    except InvalidSlugError as exc:
        raise InvalidRequest(str(exc)) from None
    made = await anyio.to_thread.run_sync(
        store.create_model, caller.user, body.project, model, body.name, body.task
    )
    item = {
        "id": made.id,
        "owner": made.owner,
        "project": made.project,
        "model": made.model,
        "name": made.name,
    }
    return json_response({**item, "region": settings.region}, 201)


def _own_model(store: UploadStore, caller: Principal, owner: str, project: str, model: str) -> ModelRow:
    found = store.model(owner, project, model) if owner == caller.user else None
    if found is None:
        raise ModelNotFound(f"no uploaded model {owner}/{project}/{model}")
    return found


@router.get(
    "/api/models/{owner}/{project}/{model}/files", summary="The model's files (the SDK's models.files)"
)
async def model_files(
    owner: str, project: str, model: str, request: Request, caller: KeyHolderDep, services: ServicesDep
) -> Response:
    store = services.uploads
    found = await anyio.to_thread.run_sync(_own_model, store, caller, owner, project, model)
    jobs = await anyio.to_thread.run_sync(store.jobs, found.id)
    files = [
        {
            "name": _download_name(found, j),
            "size": j.file_bytes,
            "downloadUrl": _download_url(request, services, j),
        }
        for j in jobs
        if j.status == "completed" and j.file
    ]
    return json_response({"files": files})


@router.delete("/api/models/{owner}/{project}/{model}", summary="Remove an uploaded model (scope export)")
async def delete_model(
    owner: str,
    project: str,
    model: str,
    caller: ExportCallerDep,
    services: ServicesDep,
    settings: SettingsDep,
) -> Response:
    store = services.uploads
    found = await anyio.to_thread.run_sync(_own_model, store, caller, owner, project, model)
    serving = await anyio.to_thread.run_sync(deployments_serving, store.engine, owner, project, model)
    if serving:
        raise Conflict(
            f"{found.slug} is served by the deployment {serving[0]!r}; delete that deployment first"
        )
    await anyio.to_thread.run_sync(remove_model, store, found, settings.model_repository.resolve())
    name = Slug.parse(found.slug).triton_name
    with contextlib.suppress(ServingError):  # never loaded (its export failed): nothing to unload
        await services.engine.triton.unload(name)
    await services.engine.catalog.refresh()  # this process answers 404 at once (others within a refresh)
    return json_response({"success": True})


def remove_model(store: UploadStore, model: ModelRow, repository: Path) -> None:
    """The model's published versions, its checkpoint, then its rows."""
    shutil.rmtree(repository / Slug.parse(model.slug).triton_name, ignore_errors=True)
    store.remove_model(model)


# --- uploads


class SignedUrlRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    assetType: Literal["models", "datasets"]
    assetId: str
    filename: str = Field(min_length=1, max_length=256)
    contentType: str = "application/octet-stream"
    totalBytes: int = Field(ge=1)


@router.post("/api/upload/signed-url", summary="A single-use URL to PUT a checkpoint to (scope export)")
async def signed_url(
    request: Request,
    caller: ExportCallerDep,
    services: ServicesDep,
    settings: SettingsDep,
    body: Annotated[SignedUrlRequest, Body()],
) -> Response:
    if body.assetType != "models":
        raise InvalidRequest("this server takes model checkpoints only (assetType 'models'), not datasets")
    if not body.filename.endswith(".pt") or "/" in body.filename or body.filename.startswith("."):
        raise InvalidRequest(f"filename {body.filename!r}: a checkpoint's name ending in .pt")
    if body.totalBytes > settings.upload_max_bytes:
        raise PayloadTooLarge(
            f"the checkpoint is {body.totalBytes} bytes; this server takes at most "
            f"{settings.upload_max_bytes}"
            f" ({settings.upload_max_bytes // MB} MB, TRIDENT_UPLOAD_MAX_BYTES)"
        )
    store = services.uploads
    model = await anyio.to_thread.run_sync(store.model_by_id, body.assetId)
    if model is None or model.owner != caller.user:
        raise ModelNotFound(f"no model with id {body.assetId!r} of yours")
    session, token = await anyio.to_thread.run_sync(
        store.open_upload, model.id, caller.user, body.filename, body.totalBytes, settings.upload_url_ttl_s
    )
    return json_response(
        {
            "sessionId": session.id,
            "uploadUrl": f"{_base_url(request)}{UPLOAD_PATH}{session.id}?token={token}",
            "expiresAt": iso(session.expires_at),
            "headers": {"Content-Type": "application/octet-stream"},
        }
    )


def _staging(settings_dir: Path, session_id: str) -> Path:
    folder = settings_dir / "staging"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{session_id}.part"


@router.put(UPLOAD_PATH + "{session_id}", summary="The bytes of an upload (the signed URL; no key)")
async def put_upload(
    session_id: str,
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    token: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    store = services.uploads
    try:
        session = await anyio.to_thread.run_sync(store.take_for_put, session_id, token)
    except UploadRefused as exc:
        raise _refusal(exc) from None
    limit = min(session.total_bytes, settings.upload_max_bytes)
    declared = request.headers.get("content-length", "")
    path = _staging(settings.uploads_dir, session.id)
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    try:
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the body is {declared} bytes; this URL takes at most {limit}")
        with path.open("wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body passed {limit} bytes, the size this URL was made for")
                sha.update(chunk)
                md5.update(chunk)
                await anyio.to_thread.run_sync(f.write, chunk)
    except ServingError as exc:
        path.unlink(missing_ok=True)
        await anyio.to_thread.run_sync(store.fail_upload, session.id, exc.detail)
        raise
    except BaseException:  # the client went away: nothing kept
        path.unlink(missing_ok=True)
        await anyio.to_thread.run_sync(store.fail_upload, session.id, "the upload was interrupted")
        raise
    await anyio.to_thread.run_sync(store.received, session.id, size, sha.hexdigest(), md5.hexdigest())
    return Response(status_code=200)


def _refusal(exc: UploadRefused) -> ServingError:
    kinds: dict[int, type[ServingError]] = {403: Forbidden, 409: Conflict, 410: Gone}
    return kinds.get(exc.status, InvalidRequest)(exc.reason)


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sessionId: str
    checksum: str | None = Field(None, description="SHA-256 of the bytes, hex (optionally 'sha256:...')")
    md5: str | None = None


@router.post("/api/upload/complete", summary="Check the uploaded bytes and queue their export (scope export)")
async def complete_upload(
    caller: ExportCallerDep,
    services: ServicesDep,
    settings: SettingsDep,
    body: Annotated[CompleteRequest, Body()],
) -> Response:
    store = services.uploads
    session = await anyio.to_thread.run_sync(store.upload, body.sessionId)
    if session is None or session.user != caller.user:
        raise NotFound(f"no upload session {body.sessionId!r} of yours")
    staged = _staging(settings.uploads_dir, session.id)
    try:
        _check_received(session.status, session.received_bytes, session.total_bytes)
        expected = (body.checksum or "").lower().removeprefix("sha256:")
        if expected and not same_text(expected, session.sha256 or ""):
            raise InvalidRequest("the uploaded bytes' SHA-256 differs from the checksum given: upload again")
        if body.md5 and not same_text(body.md5.lower(), session.md5 or ""):
            raise InvalidRequest("the uploaded bytes' MD5 differs from the md5 given: upload again")
        if not await anyio.to_thread.run_sync(zipfile.is_zipfile, staged):
            raise InvalidRequest("the upload is not a checkpoint (a .pt saved by torch is a zip archive)")
        checkpoint = settings.uploads_dir / "checkpoints" / session.model_id / session.filename
        await anyio.to_thread.run_sync(_move, staged, checkpoint)
        try:
            await anyio.to_thread.run_sync(store.accept, session.id, str(checkpoint))
        except UploadRefused as exc:
            raise _refusal(exc) from None
    except ServingError as exc:
        staged.unlink(missing_ok=True)
        if session.status != "completed":
            await anyio.to_thread.run_sync(store.fail_upload, session.id, exc.detail)
        raise
    return json_response(
        {"success": True, "file": {"size": session.received_bytes, "contentType": "application/octet-stream"}}
    )


def _check_received(status: str, received: int, total: int) -> None:
    if status == "completed":
        raise Conflict("this upload was completed already")
    if status != "received":
        raise InvalidRequest(f"nothing complete was uploaded to this session (it is {status})")
    if received != total:
        raise InvalidRequest(f"the upload has {received} bytes, {total} were announced")


def _move(staged: Path, checkpoint: Path) -> None:
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, checkpoint)


# --- exports


def _sign(secret: bytes, job_id: str, expires: int) -> str:
    return hmac.new(secret, f"export:{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def _download_url(request: Request, services: Services, job: JobRow) -> str:
    expires = int(time.time()) + DOWNLOAD_TTL_S
    signature = _sign(services.token_secret, job.id, expires)
    return f"{_base_url(request)}/api/exports/{job.id}/download?expires={expires}&signature={signature}"


def _download_name(model: ModelRow, job: JobRow) -> str:
    return f"{model.model}-v{job.version}.{job.format}"


def _export_item(request: Request, services: Services, model: ModelRow, job: JobRow) -> dict[str, Any]:
    """The SDK's `ExportsRetrieveResponseExport`, plus Trident's `progress` and `parity` (the
    parity gate's figures)."""
    item: dict[str, Any] = {
        "id": job.id,
        "status": "queued" if job.status == "queued" else job.status,
        "format": job.format,
        "args": {},
        "createdAt": iso(job.created_at),
        "updatedAt": iso(job.updated_at),
        "progress": {"percent": job.progress, "step": job.step, "attempts": job.attempts},
    }
    if job.parity:
        item["parity"] = job.parity
    if job.started_at:
        item["startedAt"] = iso(job.started_at)
    if job.completed_at:
        item["completedAt"] = iso(job.completed_at)
    if job.error:
        item["error"] = {"message": job.error, "timestamp": iso(job.completed_at or job.updated_at)}
    if job.status == "completed" and job.file:
        item["file"] = {
            "size": job.file_bytes,
            "downloadUrl": _download_url(request, services, job),
            "downloadFilename": _download_name(model, job),
        }
    return item


class NewExport(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: str
    gpuType: str | None = None
    args: dict[str, Any] | None = None


@router.post(
    "/api/models/{owner}/{project}/{model}/exports",
    summary="Export the model (the SDK's exports.create; scope export)",
)
async def create_export(
    owner: str,
    project: str,
    model: str,
    request: Request,
    caller: ExportCallerDep,
    services: ServicesDep,
    body: Annotated[NewExport, Body()],
) -> Response:
    if body.format not in FORMATS:
        raise InvalidRequest(
            f"format {body.format!r} is not exported here; supported: {', '.join(FORMATS)} "
            "(TensorRT engines: `trident export --format engine` on a host with TensorRT)"
        )
    store = services.uploads
    found = await anyio.to_thread.run_sync(_own_model, store, caller, owner, project, model)
    if found.checkpoint is None:
        raise Conflict(f"{found.slug} has no uploaded checkpoint to export yet")
    jobs = await anyio.to_thread.run_sync(store.jobs, found.id)
    # the upload's own export is this export: a running or finished one is answered, not repeated
    same = next(
        (j for j in jobs if j.format == body.format and j.status in ("queued", "running", "completed")), None
    )
    job = same if same is not None else await anyio.to_thread.run_sync(store.queue, found.id, body.format)
    return json_response(_export_item(request, services, found, job))


@router.get(
    "/api/models/{owner}/{project}/{model}/exports", summary="The model's exports (the SDK's exports.list)"
)
async def list_exports(
    owner: str,
    project: str,
    model: str,
    request: Request,
    caller: KeyHolderDep,
    services: ServicesDep,
    settings: SettingsDep,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> Response:
    store = services.uploads
    found = await anyio.to_thread.run_sync(_own_model, store, caller, owner, project, model)
    jobs = await anyio.to_thread.run_sync(store.jobs, found.id)
    items = [_export_item(request, services, found, j) for j in jobs if status in (None, j.status)][:limit]
    return json_response({"exports": items, "region": settings.region})


async def _own_job(
    store: UploadStore, caller: Principal, owner: str, project: str, model: str, export_id: str
) -> tuple[ModelRow, JobRow]:
    found = await anyio.to_thread.run_sync(_own_model, store, caller, owner, project, model)
    job = await anyio.to_thread.run_sync(store.job, export_id)
    if job is None or job.model_id != found.id:
        raise NotFound(f"no export {export_id!r} of {found.slug}")
    return found, job


@router.get(
    "/api/models/{owner}/{project}/{model}/exports/{export_id}",
    summary="One export (the SDK's exports.retrieve)",
)
async def retrieve_export(
    owner: str,
    project: str,
    model: str,
    export_id: str,
    request: Request,
    caller: KeyHolderDep,
    services: ServicesDep,
) -> Response:
    found, job = await _own_job(services.uploads, caller, owner, project, model, export_id)
    return json_response({"export": _export_item(request, services, found, job)})


@router.delete(
    "/api/models/{owner}/{project}/{model}/exports/{export_id}",
    summary="Cancel or forget an export (scope export)",
)
async def delete_export(
    owner: str, project: str, model: str, export_id: str, caller: ExportCallerDep, services: ServicesDep
) -> Response:
    store = services.uploads
    _, job = await _own_job(store, caller, owner, project, model, export_id)
    if await anyio.to_thread.run_sync(store.cancel, job.id):
        return json_response({"success": True, "action": "cancelled"})
    await anyio.to_thread.run_sync(
        store.delete_job, job.id
    )  # the published version stays: models.delete removes it
    return json_response({"success": True, "action": "deleted"})


@router.get(
    "/api/exports/{export_id}/download", summary="An exported file (the signed URL of exports.retrieve)"
)
async def download_export(
    export_id: str, services: ServicesDep, expires: int = 0, signature: str = ""
) -> Response:
    if expires < time.time() or not same_text(_sign(services.token_secret, export_id, expires), signature):
        raise Forbidden("this download URL is not valid or expired; ask exports.retrieve for a fresh one")
    job = await anyio.to_thread.run_sync(services.uploads.job, export_id)
    exists = (
        job is not None and job.file is not None and await anyio.to_thread.run_sync(Path(job.file).is_file)
    )
    if job is None or job.status != "completed" or not job.file or not exists:
        raise NotFound(f"export {export_id!r} has no file")
    return FileResponse(job.file, media_type="application/octet-stream", filename=f"model.{job.format}")
