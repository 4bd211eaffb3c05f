"""Load shedding: a bounded number of inferences per worker; past it, 503 at once.

An unbounded queue only turns overload into timeouts for everyone; refusing fast lets clients
(and load balancers) retry elsewhere. The refusal is the first thing a predict meets (`ShedAtCapacity`,
pure ASGI): no routing, no dependencies, no key check, no quota, no body read. On a server at
capacity every step would wait its turn for the event loop and the GIL (benchmarks/README.md,
"Overload").
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from frontend.errors import ServiceUnavailable
from frontend.formats import scope_format
from frontend.routes import predict_route
from frontend.serving.engine import AT_CAPACITY, InFlight
from pipeline.contract import ApiFormat


class ShedAtCapacity:
    """Pure ASGI: a predict call (a model's or a deployment's) that finds every slot taken is
    answered 503 with `Retry-After` before the app sees it."""

    def __init__(self, app: ASGIApp, in_flight: InFlight, default_format: ApiFormat = "seed") -> None:
        self.app = app
        self.in_flight = in_flight
        self.default_format = default_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.in_flight.full and predict_route(scope["path"]):
            contract = scope_format(
                scope["path"], scope.get("query_string", b""), self.default_format, scope.get("method", "GET")
            )
            await ServiceUnavailable(AT_CAPACITY).to_response(contract)(scope, receive, send)
            return
        await self.app(scope, receive, send)
