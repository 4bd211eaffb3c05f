"""`/docs`: FastAPI's Swagger UI without its inline script, so the page keeps a strict policy.

FastAPI's own page starts Swagger UI from an inline `<script>`; this one loads the same bundle and
stylesheet (FastAPI's default CDN URLs, read from its signature) and starts it from
`/static/docs.js`.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import HTMLResponse

from frontend.guards.security import SWAGGER_CSS, SWAGGER_JS

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Trident API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{SWAGGER_CSS}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{SWAGGER_JS}"></script>
  <script src="/static/docs.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-cache"})
