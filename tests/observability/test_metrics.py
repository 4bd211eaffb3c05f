"""The frontend's metrics: what an operator reads on /metrics after predict calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from frontend import metrics
from frontend.metrics_dir import MULTIPROC_ENV, prepare_multiprocess_dir

SLUG = "acme/parking/yolo11s"


async def predict(request: Request) -> Response:
    body = await request.body()
    if request.headers.get("x-boom"):
        raise RuntimeError("unexpected")
    if request.path_params["model"] == "missing":
        return JSONResponse({"success": False}, status_code=404)
    request.state.model, request.state.task = SLUG, "detect"
    request.state.timings = {"preprocess": 5.0, "inference": 40.0, "postprocess": 1.0}
    return JSONResponse({"success": True, "bytes": len(body)})


async def deployment_predict(request: Request) -> Response:
    request.state.model, request.state.task = "alice/deployments/dep1", "segment"  # the model it runs
    return JSONResponse({"images": []})


@pytest.fixture
def client() -> TestClient:
    app = Starlette(
        routes=[
            Route("/api/models/{owner}/{project}/{model}/predict", predict, methods=["POST"]),
            Route("/api/deployments/{owner}/{deployment}/predict", deployment_predict, methods=["POST"]),
            Route("/api/deployments/{owner}/{deployment}", deployment_predict, methods=["GET"]),
        ]
    )
    metrics.install(app)
    return TestClient(app, raise_server_exceptions=False)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_predict_calls_are_counted_by_model_task_status_and_plan(client: TestClient) -> None:
    ok = {"model": SLUG, "task": "detect", "status": "200", "plan": "unknown"}
    before = value("trident_requests_total", **ok)
    before_bytes = value("trident_request_bytes_total", model=SLUG)
    before_inference = value("trident_request_stage_seconds_count", model=SLUG, stage="inference")
    for _ in range(3):
        r = client.post(f"/api/models/{SLUG}/predict", files={"file": ("a.png", b"x" * 1000)})
        assert r.status_code == 200
    assert value("trident_requests_total", **ok) == before + 3
    assert value("trident_request_bytes_total", model=SLUG) - before_bytes >= 3000
    assert value("trident_request_stage_seconds_count", model=SLUG, stage="inference") == before_inference + 3
    assert value("trident_request_stage_seconds_sum", model=SLUG, stage="total") > 0
    assert value("trident_requests_in_flight") == 0


def test_deployment_predicts_are_counted_by_the_model_that_answered(client: TestClient) -> None:
    ok = {"model": "alice/deployments/dep1", "task": "segment", "status": "200", "plan": "unknown"}
    before = value("trident_requests_total", **ok)
    assert client.post("/api/deployments/alice/dep1/predict", files={"file": b"x"}).status_code == 200
    assert client.get("/api/deployments/alice/dep1").status_code == 200  # not a predict: not counted
    assert value("trident_requests_total", **ok) == before + 1


def test_unknown_models_and_crashes_keep_labels_bounded(client: TestClient) -> None:
    missing = {"model": "unknown", "task": "unknown", "status": "404", "plan": "unknown"}
    crashed = {**missing, "status": "500"}
    before = value("trident_requests_total", **missing), value("trident_requests_total", **crashed)
    assert client.post("/api/models/x/y/missing/predict").status_code == 404
    assert client.post("/api/models/x/y/z/predict", headers={"x-boom": "1"}).status_code == 500
    assert value("trident_requests_total", **missing) == before[0] + 1
    assert value("trident_requests_total", **crashed) == before[1] + 1


def test_metrics_endpoint_never_shows_api_keys(client: TestClient) -> None:
    client.post(f"/api/models/{SLUG}/predict", headers={"Authorization": "Bearer tri_secret_key_123"})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "trident_requests_total" in r.text and "tri_secret_key_123" not in r.text
    assert "trident_triton_ready 0.0" in r.text  # no Triton in this app


def test_rate_limit_and_triton_error_counters_start_at_zero_and_count() -> None:
    assert (
        REGISTRY.get_sample_value(
            "trident_rate_limit_rejections_total", {"plan": "unknown", "reason": "quota"}
        )
        is not None
    )
    before = value("trident_rate_limit_rejections_total", plan="pro", reason="quota")
    metrics.record_rate_limited("pro", "quota")
    assert value("trident_rate_limit_rejections_total", plan="pro", reason="quota") == before + 1
    before = value("trident_triton_errors_total", kind="DEADLINE_EXCEEDED")
    metrics.record_triton_error("StatusCode.DEADLINE_EXCEEDED")
    assert value("trident_triton_errors_total", kind="DEADLINE_EXCEEDED") == before + 1
    before = value("trident_triton_errors_total", kind="OTHER")
    metrics.record_triton_error(None)
    assert value("trident_triton_errors_total", kind="OTHER") == before + 1


def test_inference_inputs_are_counted_by_transport_from_zero() -> None:
    for transport in ("shm", "grpc"):
        assert REGISTRY.get_sample_value("trident_triton_inputs_total", {"transport": transport}) is not None
    before = value("trident_triton_inputs_total", transport="shm")
    metrics.record_input_transport("shm")
    assert value("trident_triton_inputs_total", transport="shm") == before + 1
    before = value("trident_triton_inputs_total", transport="grpc")
    metrics.record_input_transport("carrier pigeon")  # unknown: counted as gRPC, no new series
    assert value("trident_triton_inputs_total", transport="grpc") == before + 1


def test_multiprocess_dir_only_for_several_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    assert prepare_multiprocess_dir(1) is None
    stale = tmp_path / "prom"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"old")
    monkeypatch.setenv(MULTIPROC_ENV, str(stale))
    assert prepare_multiprocess_dir(2) == stale
    assert list(stale.iterdir()) == []  # stale counts from a previous run are gone
