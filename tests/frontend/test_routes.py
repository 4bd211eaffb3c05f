"""The predict-route table: which paths are predict calls, and which contract each answers in.

Shedding, metrics and the contract choice read this one table, so a predict call is the same
call to all three."""

from __future__ import annotations

import pytest

from core.settings import Settings
from frontend.app import create_app
from frontend.formats import resolve_format
from frontend.routes import DEPLOYMENT_PREDICT, MODEL_PREDICT, PREDICT_ROUTES, predict_route
from pipeline.formats import PLATFORM, SEED

MODEL_PATH = "/api/models/acme/parking/yolo11n/predict"
DEPLOYMENT_PATH = "/api/deployments/alice/dep1/predict"
NOT_PREDICTS = [
    "/api/models",
    "/api/models/acme/parking/yolo11n",
    "/api/models/acme/parking/predict",  # a slug has three parts
    "/api/models/acme/parking/yolo11n/extra/predict",
    "/api/models/acme/parking/yolo11n/predict/",
    "/api/deployments/alice/dep1",
    "/api/deployments/alice/dep1/metrics",
    "/api/deployments/alice/predict",
    "/livez",
    "/metrics",
    "/",
]


def test_model_and_deployment_predicts_are_found() -> None:
    assert predict_route(MODEL_PATH) is MODEL_PREDICT
    assert predict_route(DEPLOYMENT_PATH) is DEPLOYMENT_PREDICT


@pytest.mark.parametrize("path", NOT_PREDICTS)
def test_other_paths_are_not_predicts(path: str) -> None:
    assert predict_route(path) is None


def test_the_app_mounts_exactly_the_table_s_predict_routes() -> None:
    app = create_app(Settings())
    paths = app.openapi()["paths"]
    mounted = {
        path for path, operations in paths.items() if path.endswith("/predict") and "post" in operations
    }
    assert mounted == {route.path for route in PREDICT_ROUTES}


@pytest.mark.parametrize("default", [SEED, PLATFORM])
def test_the_model_predict_answers_in_the_server_s_default_unless_asked(default: object) -> None:
    assert resolve_format(MODEL_PATH, None, SEED.name if default is SEED else PLATFORM.name) is default
    assert resolve_format(MODEL_PATH, "platform", "seed") is PLATFORM
    assert resolve_format(MODEL_PATH, "seed", "platform") is SEED
    assert resolve_format(MODEL_PATH, "xml", "seed") is SEED  # not a contract: the default


def test_the_deployment_predict_is_the_platform_s_alone() -> None:
    assert resolve_format(DEPLOYMENT_PATH, None, "seed") is PLATFORM


def test_other_api_paths_are_the_platform_s_but_the_model_list() -> None:
    assert resolve_format("/api/models", None, "seed") is SEED
    assert resolve_format("/api/models", None, "seed", "POST") is PLATFORM  # models.create: the SDK's alone
    assert resolve_format("/api/models/acme/parking/yolo11n", None, "seed") is PLATFORM
    assert resolve_format("/api/models/acme/parking/predict", None, "seed") is PLATFORM  # not a predict
    assert resolve_format("/livez", None, "seed") is SEED  # outside /api/: the server's default
