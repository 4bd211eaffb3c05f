"""The browser pages' routes, without Triton: what is served, and what is not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from frontend.app import create_app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Settings()))  # no `with`: no lifespan, no Triton


@pytest.mark.parametrize("path", ["/", "/models/acme/parking/yolo11s"])
def test_pages_are_html(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_static_files_are_served_with_their_types(client: TestClient) -> None:
    assert client.get("/static/testtab.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/static/../web.py", "/static/web.py", "/static/nope.js"])
def test_nothing_else_is_served_as_static(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_examples_are_the_ultralytics_assets(client: TestClient, bus: Path) -> None:
    assert client.get("/examples").json() == ["bus.jpg", "zidane.jpg"]
    response = client.get("/examples/bus.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.content == bus.read_bytes()


@pytest.mark.parametrize("name", ["other.jpg", "..%2F__init__.py", "%2Fetc%2Fpasswd"])
def test_only_the_two_examples_are_served(client: TestClient, name: str) -> None:
    response = client.get(f"/examples/{name}")
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_finding_the_examples_does_not_import_ultralytics() -> None:
    code = (
        "import sys; from core.assets import ultralytics_assets; "
        "assert (ultralytics_assets() / 'bus.jpg').is_file(); "
        "assert 'ultralytics' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_test_tab_reads_the_servers_upload_limits() -> None:
    """The page checks a file against the limits the operator set, not against the defaults."""
    settings = Settings(max_upload_bytes=3 * 1024 * 1024, max_video_bytes=7 * 1024 * 1024)
    answer = TestClient(create_app(settings)).get("/limits")
    assert answer.status_code == 200
    assert answer.json() == {"maxImageBytes": 3 * 1024 * 1024, "maxVideoBytes": 7 * 1024 * 1024}
