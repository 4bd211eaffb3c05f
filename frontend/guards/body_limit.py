"""A pure-ASGI guard that stops an upload at the limit while it streams in.

Starlette reads whatever a client sends. This middleware answers 413 before reading a body whose
`Content-Length` is over the limit, and cuts a chunked (or lying) body as soon as the bytes
received pass it, so an oversized upload never sits in memory or on disk.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import MB
from frontend.errors import BodyTooLarge, PayloadTooLarge
from frontend.formats import scope_format
from pipeline.contract import ApiFormat

FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the small form fields


class BodyLimit:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, default_format: ApiFormat = "seed", exempt: str = ""
    ) -> None:
        self.app = app
        self.exempt = exempt  # a path prefix whose route enforces its own limit while it streams
        self.max_body_bytes = max_body_bytes
        self.default_format = default_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt and scope["path"].startswith(self.exempt)):
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        megabytes = (limit - FORM_OVERHEAD_BYTES) // MB
        too_large = PayloadTooLarge(f"the upload is larger than {megabytes} MB")
        contract = scope_format(scope["path"], scope.get("query_string", b""), self.default_format)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await too_large.to_response(contract)(scope, receive, send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await too_large.to_response(contract)(scope, receive, send)
