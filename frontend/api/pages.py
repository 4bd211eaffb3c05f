"""The browser pages: the model picker (`/`), the Test tab (`/models/{owner}/{project}/{model}`) and
its Streams page (`/streams`).

Plain static files, no build step. The pages call the same REST API as any client, with the API
key the user pastes (kept in the browser), so they see exactly what the API answers and the
same limits apply. The example images come from the `ultralytics` wheel's `assets/` folder,
found without importing ultralytics (importing it would pull torch into the server).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import orjson
from fastapi import APIRouter
from starlette.responses import FileResponse, Response

from core.assets import ultralytics_assets
from frontend.deps import SettingsDep
from frontend.errors import NotFound
from frontend.formats import json_response

STATIC = Path(__file__).parents[1] / "static"  # frontend/static/
EXAMPLES = ("bus.jpg", "zidane.jpg")
MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


@cache
def static_files() -> dict[str, Path]:
    """The allowlist of static files: exactly what ships in `frontend/static/`."""
    return {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in MEDIA_TYPES}


def _page(name: str) -> Response:
    return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/")
async def picker() -> Response:
    return _page("index.html")


@router.get("/models/{owner}/{project}/{model}")
async def test_tab(owner: str, project: str, model: str) -> Response:
    """One page for every model: the script reads the slug from the URL and asks the API."""
    return _page("model.html")


@router.get("/streams")
async def streams_page() -> Response:
    """The key's camera streams, each with its status; one shown live (its preview and events)."""
    return _page("streams.html")


@router.get("/static/{name}")
async def static(name: str) -> Response:
    path = static_files().get(name)
    if path is None:
        raise NotFound(f"no static file {name}")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/limits")
async def limits(settings: SettingsDep) -> Response:
    """The upload limits, for the Test tab to check a file before sending it (the API checks again)."""
    return json_response(
        {"maxImageBytes": settings.max_upload_bytes, "maxVideoBytes": settings.max_video_bytes}
    )


@router.get("/examples")
async def list_examples() -> Response:
    available = [n for n in EXAMPLES if (d := ultralytics_assets()) is not None and (d / n).is_file()]
    return Response(orjson.dumps(available), media_type="application/json")


@router.get("/examples/{name}")
async def example(name: str) -> Response:
    folder = ultralytics_assets()
    if name not in EXAMPLES or folder is None or not (folder / name).is_file():
        raise NotFound(f"no example image {name}; examples: {', '.join(EXAMPLES)}")
    return FileResponse(folder / name, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})
