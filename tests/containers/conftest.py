"""The production stack in real containers (podman): the images built from docker/*.Dockerfile
on local stand-ins for their upstream bases, and the CPU profile of docker/compose.yml brought up
under a project name of this run's own, with an override that only swaps images.

Everything this run creates (containers, network, volumes) is named after that project and
removed by name or id when the session ends; nothing is left running.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers.podman import (
    ROOT,
    Builder,
    PipConfig,
    build_base,
    engine_env,
    host_pip_config,
    logs,
    podman,
)
from tests.helpers.stack import Stack

SERVICES = """ARG BASE
FROM ${BASE}
RUN groupadd --system --gid 999 redis \\
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/redis redis \\
    && apt-get update && apt-get install -y --no-install-recommends redis-server prometheus nginx wget curl \\
    && rm -rf /var/lib/apt/lists/*
"""
STANDINS = {  # the upstream images' commands, users (redis: 999) and folders, on Debian's packages
    "redis": """RUN mkdir -p /data && chown redis:redis /data \\
    && printf '%s\\n' '#!/bin/sh' \\
       '[ "$1" = redis-server ] && shift && set -- redis-server --protected-mode no "$@"' \\
       'exec "$@"' > /usr/local/bin/entrypoint \\
    && chmod +x /usr/local/bin/entrypoint
WORKDIR /data
USER redis
ENTRYPOINT ["/usr/local/bin/entrypoint"]
CMD ["redis-server"]
""",  # like the upstream image's entrypoint: no protected mode (it refuses other containers)
    "prometheus": """RUN mkdir -p /prometheus && chown nobody:nogroup /prometheus
WORKDIR /prometheus
USER nobody
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
""",
    "nginx": """CMD ["nginx", "-g", "daemon off;"]
""",
}
# Grafana's image cannot be had here
UP = ("proxy", "frontend", "triton-cpu", "redis", "prometheus", "worker")
CONTAINER_RUNTIME = "/opt/trident/triton-runtime"  # TRIDENT_TRITON_RUNTIME_DIR in the images
TINY = ROOT / "tests" / "fixtures" / "tiny.png"


@dataclass(frozen=True)
class Images:
    frontend: str
    triton: str
    exporter: str
    redis: str
    prometheus: str
    nginx: str
    base: str


@dataclass
class Engine:
    env: dict[str, str]
    work: Path
    pip: PipConfig

    def podman(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        return podman(self.env, *args, timeout=timeout, check=check)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    for tool in ("podman", "debootstrap", "runc"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (.ci/run installs it)")
    work = tmp_path_factory.mktemp("podman")
    return Engine(engine_env(work), work, host_pip_config())


@pytest.fixture(scope="session")
def images(engine: Engine) -> Images:
    """The stand-in bases and the project's three images (cached by content hash)."""
    base = build_base(engine.env, engine.work, engine.pip)
    builder = Builder(engine.env, base, engine.pip)
    services = builder.build_text(SERVICES, "services")
    standins = {name: builder.build_text(f"FROM {services}\n{text}", name) for name, text in STANDINS.items()}
    return Images(
        frontend=builder.build("docker/frontend.Dockerfile", "frontend"),
        triton=builder.build("docker/triton-cpu.Dockerfile", "triton-cpu"),
        exporter=builder.build("docker/exporter.Dockerfile", "exporter"),
        base=base,
        **standins,
    )


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports (all held at once while picked: one at a time, the same port can
    come back)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def free_subnet(engine: Engine) -> ipaddress.IPv4Network:
    """A /24 no podman network and no host route uses."""
    taken = [
        ipaddress.ip_network(subnet["subnet"], strict=False)
        for net in json.loads(
            engine.podman("network", "inspect", *engine.podman("network", "ls", "-q").split())
        )
        for subnet in net.get("subnets", [])
    ]
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:  # the host's own routes
        fields = line.split()
        address, mask = (ipaddress.IPv4Address(bytes.fromhex(f)[::-1]) for f in (fields[1], fields[7]))
        if int(mask):
            taken.append(ipaddress.ip_network(f"{address}/{mask}", strict=False))
    for _ in range(100):
        candidate = ipaddress.ip_network(f"10.{secrets.randbelow(200) + 50}.{secrets.randbelow(256)}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    pytest.fail("no free /24 for the compose network")


class Compose:
    """`podman-compose` on docker/compose.yml plus an override that only swaps the images (and runs
    two frontend replicas, as `--scale frontend=2` would for `up` alone), as
    project `project` (the prefix of every container, network and volume it makes)."""

    def __init__(self, engine: Engine, images: Images, repository: Path, weights: Path) -> None:
        self.engine = engine
        self.repository, self.weights = repository, weights
        self.project = f"tct{secrets.token_hex(4)}"
        subnet = free_subnet(engine)
        self.proxy_address = str(subnet.network_address + 2)
        self.http_port, self.prometheus_port = free_ports(2)
        override = {
            "services": {
                "triton-cpu": {"image": images.triton},
                "frontend": {"image": images.frontend, "scale": 2},  # every command knows both replicas
                "exporter": {"image": images.exporter},
                "worker": {"image": images.exporter},
                "redis": {"image": images.redis},
                "prometheus": {"image": images.prometheus},
                "proxy": {"image": images.nginx},
            }
        }
        self.override = engine.work / f"{self.project}.override.yml"
        self.override.write_text(yaml.safe_dump(override))
        self.env = {
            **engine.env,
            "COMPOSE_PROFILES": "cpu",
            "MODEL_REPOSITORY": str(repository),
            "WEIGHTS_DIR": str(weights),
            "HTTP_BIND": f"127.0.0.1:{self.http_port}",
            "PROMETHEUS_BIND": f"127.0.0.1:{self.prometheus_port}",
            "STACK_SUBNET": str(subnet),
            "STACK_IP_RANGE": str(list(subnet.subnets(1))[1]),
            "PROXY_ADDRESS": self.proxy_address,
            "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(8),  # required by the file; Grafana is not started
            "TRIDENT_WORKERS": "2",
            "TRIDENT_API_FORMAT": "platform",  # as SDK and `ul` users run it; seed answers are asked for
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def run(
        self, *args: str, timeout: float = 600, check: bool = True, profiles: str = "cpu"
    ) -> subprocess.CompletedProcess[str]:
        command = [
            str(Path(sys.executable).parent / "podman-compose"),
            "-p",
            self.project,
            "-f",
            str(ROOT / "docker" / "compose.yml"),
            "-f",
            str(self.override),
            *args,
        ]
        done = subprocess.run(
            command,
            env={**self.env, "COMPOSE_PROFILES": profiles},
            cwd=ROOT / "docker",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            said = "\n".join(
                line for line in (done.stdout + done.stderr).splitlines() if "systemd" not in line
            )
            pytest.fail(f"podman-compose {' '.join(args)} exited {done.returncode}:\n{said[-4000:]}")
        return done

    def up(self) -> None:
        self.run("up", "-d", "--no-build", *UP)

    def containers(self, service: str | None = None) -> list[dict[str, object]]:
        """This project's containers (podman's labels name the project and service)."""
        filters = ["--filter", f"label=io.podman.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        return list(json.loads(self.engine.podman("ps", "-a", "--format", "json", *filters) or "[]"))

    def ids(self, service: str) -> list[str]:
        return [str(c["Id"]) for c in self.containers(service)]

    def exec(self, service: str, *command: str) -> str:
        return self.engine.podman("exec", self.ids(service)[0], *command)

    def address(self, container: str) -> str:
        networks = json.loads(self.engine.podman("inspect", container))[0]["NetworkSettings"]["Networks"]
        return str(next(iter(networks.values()))["IPAddress"])

    def wait_ready(self, timeout_s: float = 240) -> None:
        """Until every frontend replica, then the proxy, answers /readyz 200 (Triton loaded its
        models, each replica sees it). The proxy alone is not enough: it answers from whichever
        replica is up, and nginx does not pass a refused POST on to the next one, so a predict to
        a replica still starting was a 502."""
        deadline = time.monotonic() + timeout_s
        urls = [f"http://{self.address(replica)}:8080" for replica in self.ids("frontend")]
        for url in [*urls, self.url]:
            until_200(partial(httpx.get, f"{url}/readyz", timeout=3), deadline - time.monotonic(), self.logs)

    def logs(self) -> str:
        return "\n".join(
            f"--- {c['Names']}\n" + logs(self.engine.env, str(c["Id"]))[-3000:] for c in self.containers()
        )

    def remove(self) -> None:
        """Everything of this project, by id and name: containers, then its network and volumes."""
        self.run("down", "-v", "-t", "5", timeout=300, check=False)
        ids = [str(c["Id"]) for c in self.containers()]
        if ids:
            self.engine.podman("rm", "-f", "--depend", "-t", "0", "-v", *ids, check=False)
        volumes = self.engine.podman(
            "volume", "ls", "-q", "--filter", f"label=io.podman.compose.project={self.project}", check=False
        ).split()
        if volumes:
            self.engine.podman("volume", "rm", "-f", *volumes, check=False)
        self.engine.podman("pod", "rm", "-f", f"pod_{self.project}", check=False)  # if in_pod was on
        self.engine.podman("network", "rm", "-f", f"{self.project}_default", check=False)


def until_200(call: Callable[[], httpx.Response], timeout_s: float, context: Callable[[], str] = str) -> None:
    """Call until it answers 200; past `timeout_s`, fail with the last answer and `context()`."""
    deadline, last = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        try:
            r = call()
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(1)
    raise AssertionError(f"no 200 in {timeout_s} s: {last}\n{context()}")


def container_repository(stack: Stack, slug: str, folder: Path) -> None:
    """The session stack's export of `slug`, in a repository for the container Triton: the same
    model folder, its Python-backend env pointed at the runtime inside the triton-cpu image."""
    name = stack.exported[slug].triton_name
    target = folder / name
    shutil.copytree(stack.repository / name, target)
    for config in target.rglob("*.pbtxt"):
        config.write_text(config.read_text().replace(str(stack.settings.runtime_dir), CONTAINER_RUNTIME))


@pytest.fixture(scope="module")  # down once its tests are done: the worker goes on with other files
def compose(
    engine: Engine, images: Images, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Compose]:
    """The CPU profile up, two frontend replicas behind the proxy, serving the session stack's
    test/coco/yolo11n; removed after the module, whatever happened."""
    repository = tmp_path_factory.mktemp("container-models")
    weights = tmp_path_factory.mktemp("container-weights")
    repository.chmod(0o777)  # the exporter container (uid 10001) writes new versions into it
    weights.chmod(0o755)  # and reads the weights from here
    container_repository(stack, "test/coco/yolo11n", repository)
    for path in repository.rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o666)
    stack_ = Compose(engine, images, repository, weights)
    try:
        stack_.up()
        stack_.wait_ready()
        yield stack_
    finally:
        stack_.remove()
