"""A real Prometheus scrapes the running frontend and the local Triton; every dashboard and alert
query is run through its HTTP API, so none of them names a metric that does not exist."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers.stack import Stack, free_port

pytestmark = pytest.mark.integration
DOCKER = Path(__file__).parents[2] / "docker"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((DOCKER / "grafana" / "dashboards").glob("*.json"))
GPU_ONLY = "GPU only"  # panels whose description starts with this are empty without a GPU
IMAGE = Path(__file__).parents[1] / "fixtures" / "tiny.png"
PUBLIC = ("test/coco/yolo11n", "test/coco/yolo26n")


def panel_queries() -> list[tuple[str, str, bool]]:
    """(dashboard/panel, expr, gpu_only) for every target of every panel."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            gpu = panel.get("description", "").startswith(GPU_ONLY)
            out += [(f"{path.stem}/{panel['title']}", t["expr"], gpu) for t in panel["targets"]]
    return out


def alert_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus with the compose config, pointed at the test stack and scraping every second."""
    root = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERTS)]
    targets = {
        "trident-frontend": f"127.0.0.1:{stack.settings.port}",
        "triton": f"127.0.0.1:{stack.settings.triton_metrics_port}",
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=(root / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False  # still starting
            if ready:
                up = query(url, "up")
                if sorted(s["metric"]["job"] for s in up if s["value"][1] == "1") == sorted(targets):
                    break
            assert process.poll() is None, (root / "prometheus.log").read_text()[-2000:]
            time.sleep(0.5)
        else:
            raise AssertionError(f"targets not up: {query(url, 'up')}")
        yield url
    finally:
        process.terminate()
        process.wait(30)


def query(url: str, expr: str) -> list[dict[str, object]]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, object]] = body["data"]["result"]
    return result


@pytest.fixture(scope="module")
def traffic(stack: Stack, prometheus: str) -> str:
    """Predicts on both models, a 404 and a 401, then a few scrapes so rates have two samples."""
    for slug in PUBLIC:  # other test files add private models to the same stack
        for _ in range(5):
            r = stack.predict(slug, IMAGE)
            assert r.status_code == 200
            stages = [part.split(";")[0] for part in r.headers["Server-Timing"].split(", ")]
            assert stages[:-1] == list(r.json()["speed"]) == ["preprocess", "inference", "postprocess"]
            assert stages[-1] == "total"  # the whole call, added by the metrics middleware
    assert stack.predict("test/coco/nothing", IMAGE).status_code == 404
    assert stack.predict("test/coco/yolo11n", IMAGE, key="wrong").status_code == 401
    time.sleep(4)
    return prometheus


def test_every_dashboard_panel_returns_data(traffic: str) -> None:
    queries = panel_queries()
    assert len(queries) >= 15
    empty = [name for name, expr, gpu in queries if not gpu and not query(traffic, expr)]
    assert not empty, f"panels without data: {empty}"
    gpu_only = sorted({name for name, _, gpu in queries if gpu})
    assert gpu_only == ["triton/GPU memory used", "triton/GPU utilisation"]


def test_every_alert_expression_parses_and_runs(traffic: str) -> None:
    names = {name for name, _ in alert_queries()}
    assert {"TridentHighErrorRate", "TridentHighLatencyP95", "TritonNotReady"} <= names
    assert {"TritonQueueTimeGrowing", "TridentQuotaRejectionsSpike"} <= names
    for _, expr in alert_queries():
        query(traffic, expr)
    rules = httpx.get(f"{traffic}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} == names
    assert all(r["health"] != "err" for g in rules for r in g["rules"]), rules


def test_traffic_is_counted_by_model_and_status(stack: Stack, traffic: str) -> None:
    counts = {
        (s["metric"]["model"], s["metric"]["status"]): float(s["value"][1])  # type: ignore[index]
        for s in query(traffic, "sum by (model, status) (trident_requests_total)")
    }
    for slug in PUBLIC:
        assert counts[(slug, "200")] >= 5
    assert counts[("unknown", "404")] >= 1 and counts[("unknown", "401")] >= 1
    [ready] = query(traffic, "min(trident_triton_ready)")
    assert ready["value"][1] == "1"  # type: ignore[index]
    per_model = query(traffic, "sum by (model) (nv_inference_count)")
    assert {s["metric"]["model"] for s in per_model} >= {"test~coco~yolo11n", "test~coco~yolo26n"}  # type: ignore[index]
    assert stack.api_key not in httpx.get(f"{stack.base_url}/metrics").text
