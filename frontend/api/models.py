"""The Platform's model routes that a self-hosted server can answer truthfully: the SDK's
`models.list(owner, project)` and `models.retrieve(owner, project, model)`, in its shapes, for the
models the key may see. Their errors are always the Platform's `{"error": ...}`.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from starlette.responses import Response

from frontend.deps import CatalogDep, PredictCallerDep, ServicesDep, SettingsDep
from frontend.errors import ModelNotFound
from frontend.formats import json_response
from frontend.guards.auth import may_see, visible_model
from frontend.schemas import PLATFORM_ERRORS
from frontend.serving.catalog import ServedModel
from store.clock import iso
from store.keys import Principal
from store.uploads import model_status

router = APIRouter(responses=PLATFORM_ERRORS)


def _platform_model(model: ServedModel) -> dict[str, Any]:
    """A model in the SDK's `ModelsListResponseModelsItem` shape, with what Trident truly knows."""
    spec, slug = model.spec, model.slug
    exported = spec.provenance.get("exported_at", "")
    return {
        "id": str(slug),
        "owner": slug.owner,
        "project": slug.project,
        "projectName": slug.project,
        "model": slug.model,
        "visibility": spec.visibility,
        "name": slug.model,
        "task": spec.task,
        "hasWeights": True,
        "version": model.version,
        "classNames": [spec.names.get(i, str(i)) for i in range(max(spec.names, default=-1) + 1)],
        "starCount": 0,
        "isStarred": False,
        "createdAt": exported,
        "updatedAt": exported,
    }


@router.get("/api/models/{owner}/{project}", summary="Models of a project (the SDK's models.list)")
async def list_project_models(
    owner: str, project: str, caller: PredictCallerDep, catalog: CatalogDep, settings: SettingsDep
) -> Response:
    models = [
        _platform_model(m)
        for m in catalog.models
        if m.slug.owner == owner and m.slug.project == project and may_see(m.spec, caller)
    ]
    return json_response({"models": models, "region": settings.region})


@router.get("/api/models/{owner}/{project}/{model}", summary="One model (the SDK's models.retrieve)")
async def retrieve_model(
    owner: str, project: str, model: str, caller: PredictCallerDep, catalog: CatalogDep, services: ServicesDep
) -> Response:
    try:
        served = await visible_model(catalog, caller, owner, project, model)
    except ModelNotFound:
        uploaded = await _uploaded_model(services, caller, owner, project, model)
        if uploaded is None:
            raise
        return json_response({"model": uploaded, "isOwner": True})
    spec = served.spec
    metadata = {
        "imgsz": list(spec.imgsz),
        "stride": spec.stride,
        "dynamic": spec.dynamic,
        "end2end": spec.end2end,
        "kpt_shape": list(spec.kpt_shape) if spec.kpt_shape else None,
        "provenance": spec.provenance,
    }
    body = {"model": {**_platform_model(served), "metadata": metadata}, "isOwner": spec.owner == caller.user}
    return json_response(body)


async def _uploaded_model(
    services: ServicesDep, caller: Principal, owner: str, project: str, model: str
) -> dict[str, Any] | None:
    """An uploaded model not served yet (its export queued, running or failed), with its state."""
    store = services.uploads
    found = (
        await anyio.to_thread.run_sync(store.model, owner, project, model) if owner == caller.user else None
    )
    if found is None:
        return None
    jobs = await anyio.to_thread.run_sync(store.jobs, found.id)
    newest = jobs[0] if jobs else None
    item: dict[str, Any] = {
        "id": found.id,
        "owner": owner,
        "project": project,
        "projectName": project,
        "model": model,
        "visibility": "private",
        "name": found.name,
        "status": model_status(jobs),
        "hasWeights": found.checkpoint is not None,
        "starCount": 0,
        "isStarred": False,
        "createdAt": iso(found.created_at),
        "updatedAt": iso(found.updated_at),
    }
    if found.task:
        item["task"] = found.task
    if newest is not None and newest.error:
        item["error"] = newest.error
    return item
