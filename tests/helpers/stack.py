"""The real stack for integration and browser tests, as a pytest plugin (`pytest_plugins` in
tests/conftest.py): one local Triton and one frontend on free ports for the whole session.

Triton runs from the runtime `make setup` installs (`trident triton --install-only`); the frontend
runs as its own process (`python -m trident serve`) exactly as in production. Defining the
`stack` fixture here, once, is what lets every directory share it: a conftest that imported it
would register a second definition and start a second stack.

Exports go through `ExportCache`: the same weights with the same export options are exported
(ONNX + both parity checks, tens of seconds on 2 cores) once a session; another slug gets its
own published folder from that ONNX through the real exporter, minus the repeated work.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import httpx
import pytest
from ultralytics_platform import Platform

import exporter.export
from core.settings import Settings
from core.slug import Slug
from exporter.export import ExportRequest, ExportResult, export_model
from exporter.triton_config import ServingOptions
from store.keys import KeyStore
from trident import runtime

TEST_PLANS = '{"free": [10, 100], "pro": [60, 10000], "test": [1000000, 1000000]}'
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_outside_ephemeral_range() -> int:
    """A free port below the kernel's ephemeral range, for a server that starts (or starts again)
    while clients already try to reach it. A port from that range can meanwhile become the source
    port of some connection, even of a client's own retry connecting to itself (TCP's simultaneous
    open), and the server then cannot bind it: CI once saw `redis-server` fail so."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(max(1024, low - 12000), low), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


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


def in_one_minute(attempt: Callable[[int], T], shared_window: bool = False) -> T:
    """`attempt(n)` (n = 0, 1, 2), checked on what happened within one clock minute.

    Limits count in windows aligned to the clock minute, so a test that spends one must not see a
    minute end midway. Instead of waiting for a fresh minute before every such test, an attempt
    that saw one end is run again (its outcome, pass or fail, proves nothing): at once with the
    fresh key or client address `n` picks, or, where the window is `shared_window` (a
    deployment's own limit, whoever calls), once the next minute starts."""
    for n in range(3):
        minute = time.time() // 60
        try:
            result = attempt(n)
        except AssertionError:
            if time.time() // 60 == minute:
                raise
        else:
            if time.time() // 60 == minute:
                return result
        if shared_window:
            time.sleep(61 - time.time() % 60)
    raise AssertionError("three attempts in a row each saw a minute end")


def post_predict(
    base_url: str, key: str, slug: str, image: Path, answer_format: str | None = None, **params: object
) -> httpx.Response:
    """`image` uploaded to `slug`'s predict with `key`, the form fields `params`; the answer in
    `answer_format` (`?format=`) where the server's default is not the one wanted."""
    with image.open("rb") as f:
        return httpx.post(
            f"{base_url}/api/models/{slug}/predict",
            params={"format": answer_format} if answer_format else None,
            headers={"Authorization": f"Bearer {key}"},
            files={"file": (image.name, f)},
            data={k: str(v) for k, v in params.items()},
            timeout=60,
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ExportCache:
    """Each (weights bytes, export options) exported once a session; other slugs reuse its ONNX.

    A repeat runs the real `export_model` (checkpoint, spec, configs, publish) with the ONNX export
    and the parity check answered from the first run: both depend only on the weights and these
    options, never on the slug, owner or visibility."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.exported: dict[tuple[object, ...], tuple[Path, Any]] = {}

    def export(self, request: ExportRequest) -> ExportResult:
        key = (_sha256(request.weights), request.imgsz, request.dynamic, request.nms, request.sample_image)
        if (done := self.exported.get(key)) is None:
            result = export_model(request)
            kept = self.folder / f"{len(self.exported)}.onnx"
            shutil.copyfile(result.path / "model.onnx", kept)
            self.exported[key] = (kept, result.parity)
            return result
        onnx, parity = done

        def copy_onnx(_model: object, out_dir: Path, **_options: object) -> Path:
            return Path(shutil.copyfile(onnx, out_dir / "model.onnx"))

        with (
            mock.patch.object(exporter.export, "export_onnx", copy_onnx),
            mock.patch.object(exporter.export, "check_parity", return_value=parity),
        ):
            return export_model(request)


@dataclass
class Stack:
    settings: Settings
    repository: Path
    log: Path
    exports: ExportCache
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
        """SIGKILL tritonserver (a crash), then end what it leaves, as `trident run` does: its
        Python-backend stubs outlive it, deaf to SIGTERM (one such stub outlived a CI run)."""
        assert self.triton is not None
        self.triton.kill()
        self.triton.wait()
        runtime.clean_leftovers(self.triton.pid)

    def export(self, weights: Path, slug: str, **kwargs: Any) -> ExportResult:
        """Export into the running stack (public unless `visibility` says otherwise)."""
        options = ServingOptions(execution_env=str(self.settings.runtime_dir))
        kwargs.setdefault("visibility", "public")
        result = self.exports.export(
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
        return post_predict(self.base_url, key or self.api_key, slug, image, **params)

    def start_frontend(self, log: Path) -> None:
        out = log.open("wb")
        self.frontend = subprocess.Popen(
            [sys.executable, "-m", "trident", "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        if self.frontend:
            runtime.stop(self.frontend)
        if self.triton:
            runtime.stop(self.triton)


def new_stack(root: Path, exports: ExportCache, database_url: str | None = None) -> Stack:
    """A stack's folders and free ports (nothing started); its own key store unless one is given."""
    settings = Settings(
        port=free_port(),
        triton_grpc_port=free_port(),
        triton_http_port=free_port(),
        triton_metrics_port=free_port(),
        data_dir=Path(".trident").resolve(),
        database_url=database_url or f"sqlite:///{root / 'keys.db'}",
    )
    return Stack(settings, root / "model_repository", root / "triton.log", exports)


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> ExportCache:
    return ExportCache(tmp_path_factory.mktemp("export-cache"))


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, export_cache: ExportCache, yolo11n_pt: Path, yolo26n_pt: Path
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    stack = new_stack(root, export_cache)
    stack.api_key = stack.create_key("test", "test")
    stack.export(yolo11n_pt, "test/coco/yolo11n")
    stack.export(yolo26n_pt, "test/coco/yolo26n")
    stack.start_triton()
    stack.start_frontend(root / "frontend.log")
    try:
        for slug in stack.exported:
            stack.wait_model(slug)
        yield stack
    finally:
        stack.stop()


@contextmanager
def own_triton(stack: Stack, root: Path, slug: str) -> Iterator[Stack]:
    """A small stack for tests that kill Triton: its own Triton serving only `slug` (copied from
    the session stack's export) and its own frontend, on the session's key store, so the session
    Triton never restarts. Nothing is started: the test starts Triton and the frontend."""
    small = new_stack(root, stack.exports, stack.settings.database_url)
    small.api_key = stack.api_key
    name = stack.exported[slug].triton_name
    shutil.copytree(stack.repository / name, small.repository / name)
    small.exported[slug] = stack.exported[slug]
    try:
        yield small
    finally:
        small.stop()


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
