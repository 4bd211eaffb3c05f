"""Headers every response carries, API and pages alike.

The pages load only their own scripts and styles (no inline ones: an injected `<script>` or
`onerror=` does not run), connect only to this origin, cannot be framed, and send no Referer.
`/docs` also loads Swagger UI from FastAPI's CDN (its scripts and styles, nothing inline).
Browsers report a violation instead of running what the policy forbids; the browser tests
listen for such reports.
"""

from __future__ import annotations

import inspect
from urllib.parse import urlsplit

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# `/docs` loads Swagger UI from FastAPI's default CDN (its URLs read from FastAPI's signature)
_DEFAULTS = inspect.signature(get_swagger_ui_html).parameters
SWAGGER_JS = str(_DEFAULTS["swagger_js_url"].default)
SWAGGER_CSS = str(_DEFAULTS["swagger_css_url"].default)
_parts = urlsplit(SWAGGER_JS)
SWAGGER_ORIGIN = f"{_parts.scheme}://{_parts.netloc}"


CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src blob:; "  # the Test tab plays the chosen video from a blob: URL
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_CSP = (
    f"default-src 'none'; script-src 'self' {SWAGGER_ORIGIN}; style-src 'self' {SWAGGER_ORIGIN}; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",  # JSON is JSON: a browser never guesses HTML or script
}
_RAW = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
_RAW_DOCS = [(b"content-security-policy", DOCS_CSP.encode()), *_RAW[1:]]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _RAW_DOCS if scope["path"] == "/docs" else _RAW

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
