"""`ShedAtCapacity` on its own: which calls it refuses when every slot is taken, in which shape."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from frontend.errors import ServiceUnavailable
from frontend.guards.shedding import ShedAtCapacity
from frontend.serving.engine import InFlight

PREDICTS = ["/api/models/a/b/c/predict", "/api/deployments/alice/dep1/predict"]
OTHERS = ["/api/models", "/api/models/a/b/c", "/livez", "/api/deployments/alice/dep1", "/metrics"]


def client(in_flight: InFlight) -> TestClient:
    async def reached(request: Request) -> PlainTextResponse:
        return PlainTextResponse("app")

    routes = [Route(p, reached, methods=["GET", "POST"]) for p in PREDICTS + OTHERS]
    return TestClient(ShedAtCapacity(Starlette(routes=routes), in_flight, default_format="seed"))


@pytest.mark.parametrize("path", PREDICTS)
def test_a_predict_at_capacity_is_a_503_with_retry_after_before_the_app(path: str) -> None:
    in_flight = InFlight(2)
    with in_flight.slot(), in_flight.slot():
        seed = client(in_flight).post(path, files={"file": b"x"})
        platform = client(in_flight).post(path + "?format=platform", files={"file": b"x"})
    for answer in (seed, platform):
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    platform_shape = {"error": "Service unavailable: the server is at capacity; retry in a moment"}
    assert platform.json() == platform_shape
    if path.startswith("/api/deployments/"):  # a Platform-only route: always its shape
        assert seed.json() == platform_shape
    else:
        assert seed.json()["error"]["code"] == "service_unavailable" and seed.json()["success"] is False
    assert client(in_flight).post(path).text == "app"  # slots free again


@pytest.mark.parametrize("path", OTHERS)
def test_everything_else_passes_at_capacity(path: str) -> None:
    in_flight = InFlight(1)
    with in_flight.slot():
        assert client(in_flight).get(path).text == "app"


def test_a_slot_past_the_limit_is_refused_inside_the_route_too() -> None:
    """A body that arrived while the slots filled: the route's own check."""
    in_flight = InFlight(1)
    with in_flight.slot(), pytest.raises(ServiceUnavailable), in_flight.slot():
        pass
    assert in_flight.count == 0
