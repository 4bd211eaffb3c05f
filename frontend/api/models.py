"""The Platform's model routes that a self-hosted server can answer truthfully: the SDK's
`models.list(owner, project)` and `models.retrieve(owner, project, model)`, in its shapes, for the
models the key may see. Their errors are always the Platform's `{"error": ...}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from frontend.deps import CatalogDep, PredictCallerDep, SettingsDep
from frontend.formats import json_response
from frontend.guards.auth import may_see, visible_model
from frontend.schemas import PLATFORM_ERRORS
from frontend.serving.catalog import ServedModel

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
    owner: str, project: str, model: str, caller: PredictCallerDep, catalog: CatalogDep
) -> Response:
    served = await visible_model(catalog, caller, owner, project, model)
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
