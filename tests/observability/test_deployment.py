"""Structure of what ships for production (no Docker engine or cluster here): the compose file,
the Dockerfiles, the Grafana provisioning and the Kubernetes manifests, checked offline."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from core.settings import Settings

ROOT = Path(__file__).parents[2]
DOCKER = ROOT / "docker"
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30"
COMPOSE = yaml.safe_load((DOCKER / "compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def test_compose_has_every_service_with_a_healthcheck() -> None:
    assert {"triton", "triton-cpu", "frontend", "redis", "prometheus", "grafana", "exporter"} <= set(SERVICES)
    for name, service in SERVICES.items():
        if name != "exporter":  # a one-shot tool, not a service
            assert service["healthcheck"]["test"], name
        for path in (service.get("build") or {}).get("dockerfile", "").split() or []:
            assert (ROOT / path).is_file(), path


def test_compose_starts_services_only_after_their_dependencies_are_healthy() -> None:
    for name, service in SERVICES.items():
        for dep, condition in (service.get("depends_on") or {}).items():
            assert dep in SERVICES and condition["condition"] == "service_healthy", (name, dep)
    frontend = SERVICES["frontend"]["depends_on"]
    assert {"triton", "triton-cpu", "redis"} <= set(frontend)
    assert "TRIDENT_DATABASE_URL" in SERVICES["frontend"]["environment"]  # the key store


def test_gpu_triton_serves_the_native_configs_with_strict_readiness() -> None:
    triton = SERVICES["triton"]
    assert triton["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert "--model-config-name=onnxruntime" in triton["command"]
    assert "--strict-readiness=true" in triton["command"]
    assert any(v.endswith(":/models:ro") for v in triton["volumes"])
    [device] = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "v2/health/ready" in " ".join(triton["healthcheck"]["test"])


def test_profiles_choose_gpu_or_cpu_triton_under_one_name() -> None:
    assert SERVICES["triton"]["profiles"] == ["gpu"] and SERVICES["triton-cpu"]["profiles"] == ["cpu"]
    assert "triton" in SERVICES["triton-cpu"]["networks"]["default"]["aliases"]
    assert "COMPOSE_PROFILES=gpu" in (DOCKER / ".env").read_text()
    cpu = instructions(DOCKER / "triton-cpu.Dockerfile")
    assert ("CMD", '["trident", "triton"]') in cpu  # the local runtime, exactly


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_as_a_non_root_user(dockerfile: Path) -> None:
    users = [arg for op, arg in instructions(dockerfile) if op == "USER"]
    assert users and users[-1] not in {"root", "0"}, dockerfile.name


def test_frontend_image_carries_no_torch() -> None:
    steps = instructions(DOCKER / "frontend.Dockerfile")
    installs = " ".join(arg for op, arg in steps if op == "RUN" and "pip install" in arg)
    assert "pip install" in installs and "[export]" not in installs and "torch" not in installs
    assert ("ARG", "BASE=python:3.11-slim") in steps  # the upstream base unless a build says otherwise
    assert all(arg.startswith("${BASE}") for op, arg in steps if op == "FROM")
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in base if re.match(r"(torch|ultralytics|tensorrt)\b", d)]
    assert any(op == "HEALTHCHECK" for op, _ in steps)


def test_prometheus_scrapes_frontend_and_triton_metrics() -> None:
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert targets == {"trident-frontend": ["frontend:8080"], "triton": ["triton:8002"]}
    assert "./prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]


def test_grafana_provisions_the_datasource_and_both_dashboards() -> None:
    provisioning = DOCKER / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboards = {
        p.stem: json.loads(p.read_text()) for p in (DOCKER / "grafana" / "dashboards").glob("*.json")
    }
    assert set(dashboards) == {"api", "triton"}
    for board in dashboards.values():
        for panel in board["panels"]:
            assert panel["targets"] and all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])
    titles = " ".join(p["title"] for p in dashboards["triton"]["panels"]).lower()
    for wanted in (
        "inference rate",
        "queue vs compute",
        "batch size",
        "latency",
        "gpu utilisation",
        "gpu memory",
    ):
        assert wanted in titles


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifests_validate_against_the_kubernetes_schemas(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}


def test_triton_pods_get_a_gpu_and_are_ready_only_when_triton_is() -> None:
    [container] = by_kind("Deployment")["triton"]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert "--model-config-name=onnxruntime" in container["args"]


def test_frontend_scales_behind_an_ingress_with_the_upload_limit() -> None:
    hpa = by_kind("HorizontalPodAutoscaler")["frontend"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "frontend" and hpa["spec"]["maxReplicas"] > 2
    [container] = by_kind("Deployment")["frontend"]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]  # the HPA's utilisation needs a request
    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == set(by_kind("ConfigMap")) | set(by_kind("Secret"))
    ingress = by_kind("Ingress")["trident"]
    body_limit = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert body_limit.endswith("m")  # nginx's m: MiB
    # above the API's largest upload (a video) plus the form's overhead, so the API (not nginx)
    # answers an oversize upload with its own 413; not far above it either
    largest = Settings().max_video_bytes
    assert largest < int(body_limit[:-1]) * 2**20 <= largest + 2 * 2**20
    assert {"frontend", "triton", "redis"} <= set(by_kind("Service"))
