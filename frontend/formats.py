"""Which contract answers a request: `?format=` if it names one, else the route's.

The predict call and `GET /api/models` exist in both contracts and answer in the server's default
(`TRIDENT_API_FORMAT`); every other `/api/` path is the Platform's alone (the SDK's `models.list`,
`models.retrieve`, and calls Trident does not implement), so its errors take the Platform's shape.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson
from starlette.responses import Response

from pipeline.contract import API_FORMATS, ApiFormat


def _is_shared_route(path: str) -> bool:
    return path == "/api/models" or (path.startswith("/api/models/") and path.endswith("/predict"))


def resolve_format(path: str, requested: str | None, default: ApiFormat) -> ApiFormat:
    for name in API_FORMATS:
        if requested == name:
            return name
    if path.startswith("/api/") and not _is_shared_route(path):
        return "platform"
    return default


def scope_format(path: str, query_string: bytes, default: ApiFormat) -> ApiFormat:
    """The same, from a raw ASGI scope's path and query string (for middleware)."""
    requested = parse_qs(query_string.decode("latin-1")).get("format", [None])[-1]
    return resolve_format(path, requested, default)


def json_response(body: object, status_code: int = 200) -> Response:
    """A JSON answer, encoded by orjson (several times faster than the standard library's)."""
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")
