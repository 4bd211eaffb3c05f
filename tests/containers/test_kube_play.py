"""`podman kube play` of the rendered `kubectl kustomize deploy/`: the manifests' ConfigMap,
Secret, Deployments (commands, environment, mounts, probes) and claims start the real images and
answer a predict. What podman cannot play (Namespace, Services, the HPA, the Ingress) stays
checked by tests/observability/test_kustomize.py; here the Services' names are the pods'
`hostAliases`, as a cluster's DNS would give them.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.containers.conftest import (
    TINY,
    Engine,
    Images,
    container_repository,
    free_ports,
    free_subnet,
    until_200,
)
from tests.helpers.podman import ROOT
from tests.helpers.stack import Stack, post_predict

SLUG = "test/coco/yolo11n"
pytestmark = pytest.mark.timeout(1800)  # the first test builds the images: minutes without the cache
PLAYED = {"ConfigMap", "Deployment", "PersistentVolumeClaim"}  # + the Secret, as a podman secret
SCHEMA_ONLY = {"Namespace", "Service", "HorizontalPodAutoscaler", "Ingress"}
ORDER = ("redis", "triton", "frontend")  # the pods, in the order of their --ip addresses


def rendered() -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy")], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def for_podman(
    docs: list[dict[str, Any]], prefix: str, images: Images, addresses: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The documents podman plays, named after this run; and the Secret, which podman 4.3 takes
    only as a podman secret. Images become the local builds (Triton: the CPU image, as in the
    compose `cpu` profile: the NGC image cannot be had here); the Services' names resolve to the
    pods' addresses; the Secret is filled in as the README says to, before applying."""
    kinds = {doc["kind"] for doc in docs}
    assert kinds == PLAYED | SCHEMA_ONLY | {"Secret"}, kinds  # a new kind is placed on one side
    secret = next(doc for doc in docs if doc["kind"] == "Secret")
    secret["stringData"]["TRIDENT_DATABASE_URL"] = "sqlite:////tmp/trident.db"  # the pod's emptyDir
    played = sorted(
        (doc for doc in docs if doc["kind"] in PLAYED),
        key=lambda d: (
            d["kind"] == "Deployment",
            ORDER.index(d["metadata"]["name"]) if d["kind"] == "Deployment" else 0,
        ),
    )
    for doc in played:
        doc["metadata"]["name"] = f"{prefix}-{doc['metadata']['name']}"
        doc["metadata"].pop("namespace", None)
        if doc["kind"] != "Deployment":
            continue
        doc["spec"]["replicas"] = 1  # podman plays each replica as a pod, on the same host ports
        pod = doc["spec"]["template"]["spec"]
        pod["hostAliases"] = [{"ip": ip, "hostnames": [name]} for name, ip in addresses.items()]
        for volume in pod.get("volumes", []):
            volume["name"] = f"{prefix}-{volume['name']}"  # podman names an emptyDir's volume after it
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]
                claim["claimName"] = f"{prefix}-{claim['claimName']}"
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                mount["name"] = f"{prefix}-{mount['name']}"
            for source in container.get("envFrom", []):
                for ref in source.values():
                    ref["name"] = f"{prefix}-{ref['name']}"
            name = container["name"]
            if name == "triton":
                container["image"] = images.triton
                container.pop("args")  # the image's own `trident triton`, the same server on the CPU
                for limits in container["resources"].values():
                    limits.pop("nvidia.com/gpu")
                pod.pop("tolerations")
            else:
                container["image"] = {"frontend": images.frontend, "redis": images.redis}[name]
    ports = [
        port
        for doc in played
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
    ]
    for port, free in zip(ports, free_ports(len(ports)), strict=True):  # podman 4.3 publishes every one
        port.update(hostIP="127.0.0.1", hostPort=free)
    data = {k: base64.b64encode(v.encode()).decode() for k, v in secret["stringData"].items()}
    return played, {"name": f"{prefix}-{secret['metadata']['name']}", "data": data}


@pytest.fixture
def kube(engine: Engine, images: Images, stack: Stack, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The played manifests; (the frontend's URL, its container). All of it removed after."""
    prefix = f"tkp{secrets.token_hex(3)}"
    subnet = free_subnet(engine)
    hosts = list(subnet.hosts())
    addresses = {name: str(hosts[10 + i]) for i, name in enumerate(ORDER)}
    network, secret_name, volumes = f"{prefix}-net", "", []
    played, secret = for_podman(rendered(), prefix, images, addresses)
    manifest = tmp_path / "played.yaml"
    manifest.write_text(yaml.safe_dump_all(played))
    try:
        engine.podman("network", "create", "--subnet", str(subnet), network)
        secret_file = tmp_path / "secret.json"
        secret_file.write_text(json.dumps(secret["data"]))
        engine.podman("secret", "create", secret["name"], str(secret_file))
        secret_name = secret["name"]
        ips = [a for name in ORDER for a in ("--ip", addresses[name])]
        volumes = [d["metadata"]["name"] for d in played if d["kind"] == "PersistentVolumeClaim"] + [
            v["name"]
            for d in played
            if d["kind"] == "Deployment"
            for v in d["spec"]["template"]["spec"].get("volumes", [])
            if "emptyDir" in v
        ]
        engine.podman("kube", "play", "--network", network, *ips, str(manifest), timeout=300)
        for pod in ORDER:  # an emptyDir is world-writable in Kubernetes; podman 4.3 makes it root's
            container = f"{prefix}-{pod}-pod-0-{pod}"
            for mount in json.loads(engine.podman("inspect", container))[0]["Mounts"]:
                if mount["Type"] == "volume" and mount["Destination"] in ("/tmp", "/dev/shm"):
                    Path(mount["Source"]).chmod(0o1777)
        # the export lands in the claim once Triton runs, as from an exporter Job: the frontend loads it
        claim = engine.podman(
            "volume", "inspect", "--format", "{{.Mountpoint}}", f"{prefix}-model-repository"
        )
        container_repository(stack, SLUG, Path(claim.strip()))
        yield f"http://{addresses['frontend']}:8080", f"{prefix}-frontend-pod-0-frontend"
    finally:
        engine.podman("kube", "down", str(manifest), check=False)
        for pod in ORDER:
            engine.podman("pod", "rm", "-f", f"{prefix}-{pod}-pod-0", check=False)
        if volumes:
            engine.podman("volume", "rm", "-f", *volumes, check=False)
        if secret_name:
            engine.podman("secret", "rm", secret_name, check=False)
        engine.podman("network", "rm", "-f", network, check=False)


def test_the_rendered_manifests_answer_a_predict(
    engine: Engine, kube: tuple[str, str], stack: Stack, bus: Path
) -> None:
    url, frontend = kube
    created = engine.podman("exec", frontend, "trident", "keys", "create", "--user", "kube", "--plan", "pro")
    key = created.strip().splitlines()[-1]
    until_200(lambda: post_predict(url, key, SLUG, TINY), 240)  # Triton up, the export loaded
    ours, theirs = post_predict(url, key, SLUG, bus), stack.predict(SLUG, bus)
    assert ours.json()["predictions"] == theirs.json()["predictions"] != []
    user = engine.podman("exec", frontend, "id", "-u").strip()
    assert user == "10001"  # runAsUser, and readOnlyRootFilesystem held: its key store is in /tmp
