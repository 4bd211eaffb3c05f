"""What `kubectl apply -k deploy/` would create, rendered by kustomize itself (`kubectl kustomize`,
Debian's kubernetes-client) rather than read file by file: every object validates against the
schemas of the Kubernetes version the docs name (docs/operations/kubernetes.md), and the objects
agree with each other and with the frontend's settings (names, ports, labels, the Secret, the body limit)."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from core.settings import Settings
from frontend.guards.body_limit import FORM_OVERHEAD_BYTES

ROOT = Path(__file__).parents[2]
KUBERNETES_PAGE = (ROOT / "docs" / "operations" / "kubernetes.md").read_text()
NGINX_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def kubernetes_version() -> str:
    """The version the Kubernetes page names ("validated against Kubernetes 1.x")."""
    match = re.search(r"validated against Kubernetes (\d+\.\d+)", KUBERNETES_PAGE)
    assert match, "the Kubernetes page names no Kubernetes version"
    return match.group(1)


@cache
def rendered() -> tuple[dict[str, Any], ...]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed (.ci/run installs Debian's kubernetes-client)")
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy")], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def one(kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in rendered() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def port_names(deployment: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}


def assert_service_reaches(service: dict[str, Any], deployment: dict[str, Any]) -> None:
    """The Service selects the Deployment's pods, and each target port names a container port."""
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items(), service["metadata"]["name"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in port_names(deployment), (service["metadata"]["name"], port)


def test_the_render_has_every_object_in_one_namespace() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered()}
    assert {
        ("Namespace", "trident"),
        ("ConfigMap", "trident-frontend"),
        ("Secret", "trident-api-keys"),
        ("Deployment", "frontend"),
        ("Service", "frontend"),
        ("HorizontalPodAutoscaler", "frontend"),
        ("Ingress", "trident"),
        ("Deployment", "redis"),
        ("Service", "redis"),
        ("Deployment", "triton"),
        ("Service", "triton"),
    } <= kinds
    assert {d["metadata"].get("namespace") for d in rendered() if d["kind"] != "Namespace"} == {"trident"}


def test_every_rendered_object_validates_for_the_readmes_kubernetes_version() -> None:
    version = kubernetes_version()
    for doc in rendered():
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_hpa_scales_the_frontend_deployment_within_its_bounds() -> None:
    hpa, deployment = one("HorizontalPodAutoscaler", "frontend"), one("Deployment", "frontend")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "frontend")
    assert 2 <= hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    assert container(deployment)["resources"]["requests"]["cpu"]  # CPU utilisation needs a request


def test_services_select_their_pods_on_named_ports() -> None:
    for name in ("frontend", "redis", "triton"):
        assert_service_reaches(one("Service", name), one("Deployment", name))


def test_the_frontend_settings_point_at_the_redis_and_triton_services() -> None:
    config = one("ConfigMap", "trident-frontend")["data"]
    settings = Settings.model_validate({k.removeprefix("TRIDENT_").lower(): v for k, v in config.items()})
    redis = re.fullmatch(r"redis://([\w-]+):(\d+)/\d+", settings.redis_url)
    assert redis, settings.redis_url
    redis_ports = {p["port"] for p in one("Service", "redis")["spec"]["ports"]}
    assert one("Service", redis.group(1)) and int(redis.group(2)) in redis_ports
    triton = {p["name"]: p["port"] for p in one("Service", settings.triton_host)["spec"]["ports"]}
    assert (triton["grpc"], triton["http"]) == (settings.triton_grpc_port, settings.triton_http_port)
    assert port_names(one("Deployment", "triton"))["grpc"] == settings.triton_grpc_port
    frontend = one("Deployment", "frontend")
    assert port_names(frontend)["http"] == settings.port
    probes = container(frontend)
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"  # 503 while the key store is down


def test_the_frontend_reads_the_configmap_and_the_key_store_secret() -> None:
    sources = container(one("Deployment", "frontend"))["envFrom"]
    assert {"configMapRef": {"name": "trident-frontend"}} in sources
    [secret_ref] = [s["secretRef"]["name"] for s in sources if "secretRef" in s]
    secret = one("Secret", secret_ref)
    assert set(secret["stringData"]) == {"TRIDENT_DATABASE_URL"}
    assert "postgresql+psycopg://" in (ROOT / "deploy" / "config.yaml").read_text()  # the driver installed


def test_the_ingress_routes_to_the_frontend_and_admits_a_full_upload() -> None:
    ingress = one("Ingress", "trident")
    service_ports = {p["name"] for p in one("Service", "frontend")["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "frontend" and backend["port"]["name"] in service_ports
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()  # type: ignore[union-attr]
    # above the frontend's own limit (upload + form overhead): an oversize upload gets the API's 413
    settings = Settings()
    largest = max(settings.max_upload_bytes, settings.max_video_bytes)
    assert int(number) * NGINX_UNITS.get(unit, 1) >= largest + FORM_OVERHEAD_BYTES


def test_the_frontend_image_installs_the_postgres_driver() -> None:
    dockerfile = (ROOT / "docker" / "frontend.Dockerfile").read_text()
    assert '".[postgres]"' in dockerfile
