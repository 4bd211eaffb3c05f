"""Which contract answers a request: `?format=` if it names one, else the route's.

The model predict call (`frontend.routes`) and `GET /api/models` exist in both contracts and
answer in the server's default (`TRIDENT_API_FORMAT`); every other `/api/` call is the Platform's
alone (the deployment predict, the SDK's `models.retrieve`, `models.create` (`POST /api/models`),
uploads, and calls Trident does not implement), so its errors take the Platform's shape.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson
from starlette.responses import Response

from frontend.routes import predict_route
from pipeline.contract import ApiFormat
from pipeline.formats import FORMATS, PLATFORM, Format

MODEL_LIST = "/api/models"


def _is_shared_route(path: str, method: str) -> bool:
    route = predict_route(path)
    return (path == MODEL_LIST and method in ("GET", "HEAD")) or (route is not None and route.shared)


def resolve_format(path: str, requested: str | None, default: ApiFormat, method: str = "GET") -> Format:
    for contract in FORMATS.values():
        if requested == contract.name:
            return contract
    if path.startswith("/api/") and not _is_shared_route(path, method):
        return PLATFORM
    return FORMATS[default]


def scope_format(path: str, query_string: bytes, default: ApiFormat, method: str = "GET") -> Format:
    """The same, from a raw ASGI scope's path and query string (for middleware)."""
    requested = parse_qs(query_string.decode("latin-1")).get("format", [None])[-1]
    return resolve_format(path, requested, default, method)


def json_response(body: object, status_code: int = 200) -> Response:
    """A JSON answer, encoded by orjson (several times faster than the standard library's)."""
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")
