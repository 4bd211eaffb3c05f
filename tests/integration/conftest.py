"""The real stack for integration tests: a local Triton and the frontend, on free ports.

Triton runs from the runtime `make setup` installs (`trident triton --install-only`); the frontend
runs as its own process (`python -m trident serve`) exactly as in production.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from ultralytics_platform import Platform

from core.settings import Settings
from core.slug import Slug
from exporter.export import ExportRequest, ExportResult, export_model
from exporter.triton_config import ServingOptions
from store.keys import KeyStore
from trident import runtime

pytestmark = pytest.mark.integration
TEST_PLANS = '{"free": [10, 100], "pro": [60, 10000], "test": [1000000, 1000000]}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A throwaway `redis-server` on `port` (no persistence), returned once it answers PING."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (.ci/run installs it)")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while (
        subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False).stdout
        != b"PONG\n"
    ):
        assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    return server


def assert_error(response: httpx.Response, status: int, message: str, detail: str = "") -> None:
    """The Platform's error envelope with this status, message and (part of a) detail; no trace."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["message"] == message
    assert detail.lower() in body["error"]["detail"].lower()
    assert "Traceback" not in response.text


@dataclass
class Stack:
    settings: Settings
    repository: Path
    log: Path
    triton: subprocess.Popen[bytes] | None = None
    frontend: subprocess.Popen[bytes] | None = None
    exported: dict[str, ExportResult] = field(default_factory=dict)
    api_key: str = ""  # user "test" on an unmetered plan; see `TEST_PLANS`

    @property
    def env(self) -> dict[str, str]:
        """The frontend's environment: this stack's ports, key store and plans."""
        return {
            **os.environ,
            "TRIDENT_PORT": str(self.settings.port),
            "TRIDENT_TRITON_GRPC_PORT": str(self.settings.triton_grpc_port),
            "TRIDENT_TRITON_HTTP_PORT": str(self.settings.triton_http_port),
            "TRIDENT_DATABASE_URL": self.settings.key_store_url,
            "TRIDENT_MODEL_REPOSITORY": str(self.repository),  # deployments link their models there
            "TRIDENT_PLANS": TEST_PLANS,
            "TRIDENT_AUTH_FAILURES_PER_MINUTE": "1000000",  # tests send many bad keys (see test_part_c)
            "TRIDENT_MODEL_REFRESH_S": "1",
        }

    def spawn_frontend(
        self, log: Path, wait_for: str = "/readyz", **env: str
    ) -> tuple[subprocess.Popen[bytes], str]:
        """Another frontend on this stack's Triton and key store (`env` overrides), once `wait_for`
        answers 200 (`/livez` to start one while Triton is down)."""
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "trident", "serve"],
            env={**self.env, "TRIDENT_PORT": str(port), **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}{wait_for}").status_code == 200:
                    return process, base
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)

    def create_key(self, user: str, plan: str) -> str:
        return KeyStore(self.settings.key_store_url).create_key(user, plan)[0]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def start_triton(self) -> None:
        self.triton = runtime.start_triton(self.settings, self.repository, self.log)
        runtime.wait_ready(self.settings, self.triton)

    def kill_triton(self) -> None:
        assert self.triton is not None
        self.triton.kill()
        self.triton.wait()

    def export(self, weights: Path, slug: str, **kwargs: Any) -> ExportResult:
        """Export into the running stack (public unless `visibility` says otherwise)."""
        options = ServingOptions(execution_env=str(self.settings.runtime_dir))
        kwargs.setdefault("visibility", "public")
        result = export_model(
            ExportRequest(weights, Slug.parse(slug), self.repository, options=options, **kwargs)
        )
        self.exported[slug] = result
        return result

    def wait_model(self, slug: str, timeout_s: float = 60, key: str | None = None) -> float:
        """Seconds until a predict on `slug` answers 200."""
        start = time.monotonic()
        image = Path(__file__).parents[1] / "fixtures" / "tiny.png"
        last = "no answer"
        while time.monotonic() - start < timeout_s:
            try:
                r = self.predict(slug, image, key=key)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if r.status_code == 200:
                    return time.monotonic() - start
                last = f"{r.status_code} {r.text}"
            time.sleep(0.1)
        raise AssertionError(f"{slug} not callable after {timeout_s} s: {last}")

    def predict(self, slug: str, image: Path, key: str | None = None, **params: object) -> httpx.Response:
        with image.open("rb") as f:
            return httpx.post(
                f"{self.base_url}/api/models/{slug}/predict",
                headers={"Authorization": f"Bearer {key or self.api_key}"},
                files={"file": (image.name, f)},
                data={k: str(v) for k, v in params.items()},
                timeout=60,
            )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, yolo11n_pt: Path, yolo26n_pt: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    settings = Settings(
        port=free_port(),
        triton_grpc_port=free_port(),
        triton_http_port=free_port(),
        triton_metrics_port=free_port(),
        data_dir=Path(".trident").resolve(),
        database_url=f"sqlite:///{root / 'keys.db'}",
    )
    stack = Stack(settings, root / "model_repository", root / "triton.log")
    stack.api_key = stack.create_key("test", "test")
    stack.export(yolo11n_pt, "test/coco/yolo11n")
    stack.export(yolo26n_pt, "test/coco/yolo26n")
    stack.start_triton()
    stack.frontend = subprocess.Popen(
        [sys.executable, "-m", "trident", "serve"],
        env=stack.env,
        stdout=(root / "frontend.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        for slug in stack.exported:
            stack.wait_model(slug)
        yield stack
    finally:
        if stack.frontend:
            runtime.stop(stack.frontend)
        if stack.triton:
            runtime.stop(stack.triton)


RATE_PLAN = "one-per-minute"  # a plan the Platform-format 429 test exhausts


@pytest.fixture(scope="session")
def platform_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A frontend on the session stack that answers in the Platform format (the SDK and `ul` cannot
    add `?format=`), with the test plans plus `RATE_PLAN` (1 request a minute)."""
    plans = json.dumps({**json.loads(TEST_PLANS), RATE_PLAN: [1, 1000]})
    log = tmp_path_factory.mktemp("platform-frontend") / "frontend.log"
    process, base = stack.spawn_frontend(log, TRIDENT_API_FORMAT="platform", TRIDENT_PLANS=plans)
    try:
        yield base
    finally:
        runtime.stop(process)


@pytest.fixture(scope="session")
def sdk(platform_url: str, stack: Stack) -> Iterator[Platform]:
    """The official SDK's client on that frontend, with the session key (no retries: errors show)."""
    with Platform(api_key=stack.api_key, base_url=platform_url, max_retries=0) as client:
        yield client


def wait_out_minute_edge(seconds_needed: float) -> None:
    """Start a test that counts in one minute window only once that window has room for it."""
    if time.time() % 60 > 60 - seconds_needed:
        time.sleep(61 - time.time() % 60)
