"""The `source` field: URLs fetched from a real local server that counts what reaches it, base64 decoded.

Network rule: traffic goes to 127.0.0.1 only. An autouse fixture makes any other `connect` (and any
name resolution other than of an address literal) fail the test, and records every attempt.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import shlex
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from prometheus_client import REGISTRY

from core.settings import Settings
from frontend.errors import InvalidImage, ServingError
from frontend.serving import source
from frontend.serving.imaging import decode_image
from frontend.serving.source import address_refusal, read_source
from tests.helpers.aio import run

TINY_PNG = (Path(__file__).parents[1] / "fixtures" / "tiny.png").read_bytes()
HTML = b"<!doctype html><html><body>not an image</body></html>"
LOOPBACK = {"127.0.0.1", "::1"}
PRIVATE_REFUSED = "private addresses are refused"
HOLD_S = 1.0  # how long /held keeps a request open


class Recorder:
    """What the local server saw: requests per path, Host headers, connections, overlap, disconnects."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.hosts: list[str] = []
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.forever_sent = 0
        self.forever_closed = threading.Event()
        self.stopping = threading.Event()  # set at teardown: handlers stop waiting


class Handler(BaseHTTPRequestHandler):
    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        seen = self.server.recorder
        parts = urlsplit(self.path)
        with seen.lock:
            seen.requests[parts.path] += 1
            seen.hosts.append(self.headers.get("Host", ""))
        if parts.path == "/image":
            self.reply(200, TINY_PNG, "image/png")
        elif parts.path == "/page.html":
            self.reply(200, HTML, "text/html")
        elif parts.path.startswith("/hop/"):  # /hop/3 -> /hop/2 -> /hop/1 -> /hop/0 (the image)
            left = int(parts.path.rsplit("/", 1)[1])
            if left:
                self.redirect(f"/hop/{left - 1}")
            else:
                self.reply(200, TINY_PNG, "image/png")
        elif parts.path == "/to":
            self.redirect(parse_qs(parts.query)["url"][0])
        elif parts.path == "/forever":
            self.forever()
        elif parts.path == "/slow":
            self.slow()
        elif parts.path == "/held":
            self.held()
        else:
            self.reply(404, b"not found", "text/plain")

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def forever(self) -> None:
        """No Content-Length, 64 KiB chunks until the client hangs up (bounded: 256 MiB or 30 s)."""
        seen = self.server.recorder
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()
        chunk = b"\xff" * 65536
        start = time.monotonic()
        try:
            for _ in range(4096):
                if time.monotonic() - start > 30 or seen.stopping.is_set():
                    break
                self.wfile.write(chunk)
                with seen.lock:
                    seen.forever_sent += len(chunk)
        except OSError:
            seen.forever_closed.set()

    def slow(self) -> None:
        """One byte a second of a 30-byte body, until the client hangs up."""
        stopping = self.server.recorder.stopping
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "30")
        self.end_headers()
        try:
            for _ in range(30):
                self.wfile.write(b"x")
                self.wfile.flush()
                if stopping.wait(1):
                    break
        except OSError:
            pass

    def held(self) -> None:
        seen = self.server.recorder
        with seen.lock:
            seen.active += 1
            seen.max_active = max(seen.max_active, seen.active)
        try:
            if not seen.stopping.wait(HOLD_S):
                self.reply(200, TINY_PNG, "image/png")
        finally:
            with seen.lock:
                seen.active -= 1


class LocalServer(ThreadingHTTPServer):
    """Serves from a thread; `close` waits (bounded) for every handler, so no socket outlives the test."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.handlers: list[threading.Thread] = []
        super().__init__(("127.0.0.1", 0), Handler)

    def start(self) -> LocalServer:
        self.loop = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.loop.start()
        return self

    def close(self) -> None:
        self.recorder.stopping.set()
        self.shutdown()
        self.server_close()
        deadline = time.monotonic() + 10
        for thread in [self.loop, *self.handlers]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in self.handlers), "a handler outlived the test"

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.handlers.append(thread)
        thread.start()

    def server_bind(self) -> None:  # HTTPServer's would look up 127.0.0.1's name (getfqdn)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]

    def get_request(self) -> tuple[socket.socket, Any]:
        connection = super().get_request()
        with self.recorder.lock:
            self.recorder.connections += 1
        return connection

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server_port}{path}"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    httpd = LocalServer().start()
    try:
        yield httpd
    finally:
        httpd.close()


@pytest.fixture(autouse=True)
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address a socket connects to; anything but loopback fails the test before any packet."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> None:
        attempts.append(str(address[0]))
        if str(address[0]) not in LOOPBACK:
            raise AssertionError(f"test tried to connect to {address[0]}")
        real_connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            raise AssertionError(f"test tried to resolve {host}") from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return attempts


def make_certificate(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf certificate for DNS name `name`: (ca.pem, leaf.pem, leaf.key)."""
    (directory / "leaf.ext").write_text(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n")
    for command in (
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=Trident-test-CA"
        " -addext basicConstraints=critical,CA:TRUE -keyout ca.key -out ca.pem",
        f"openssl req -newkey rsa:2048 -nodes -subj /CN={name} -keyout leaf.key -out leaf.csr",
        "openssl x509 -req -days 1 -CAcreateserial -in leaf.csr -CA ca.pem -CAkey ca.key"
        " -extfile leaf.ext -out leaf.pem",
    ):
        subprocess.run(shlex.split(command), cwd=directory, check=True, capture_output=True, timeout=60)
    return directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"


def settings(**overrides: Any) -> Settings:
    return Settings(**{"source_allow_private": False, **overrides})


def refused(value: str, config: Settings) -> ServingError:
    with pytest.raises(ServingError) as caught:
        run(read_source(value, config))
    return caught.value


def outcome_count(outcome: str) -> float:
    return REGISTRY.get_sample_value("trident_source_fetches_total", {"outcome": outcome}) or 0.0


def map_name_to_loopback(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """`name` resolves to 127.0.0.1 and is allowed; every other host goes through the real check."""
    real = source.checked_addresses

    async def checked(host: str, port: int, allow_private: bool) -> list[source.IPAddress]:
        if host == name:
            return [ipaddress.ip_address("127.0.0.1")]
        return await real(host, port, allow_private)

    monkeypatch.setattr(source, "checked_addresses", checked)


# 1, 2 -------------------------------------------------------------------------------------------


def test_an_image_url_is_fetched_byte_for_byte(server: LocalServer, connects: list[str]) -> None:
    before = outcome_count("ok")
    assert run(read_source(server.url("/image"), settings(source_allow_private=True))) == TINY_PNG
    assert server.recorder.requests["/image"] == 1
    assert connects == ["127.0.0.1"]
    assert outcome_count("ok") == before + 1


def test_loopback_is_refused_without_the_setting_and_nothing_reaches_it(
    server: LocalServer, connects: list[str]
) -> None:
    before = outcome_count("refused_address")
    error = refused(server.url("/image"), settings())
    assert error.status_code == 400
    assert error.detail == f"source: the address 127.0.0.1 is loopback; {PRIVATE_REFUSED}"
    assert server.recorder.requests["/image"] == 0 and server.recorder.connections == 0
    assert connects == []
    assert outcome_count("refused_address") == before + 1


# 3 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resolved",
    [["127.0.0.1"], ["8.8.8.8", "127.0.0.1"]],  # one refused address among public ones refuses the host
)
def test_a_public_name_resolving_to_loopback_is_refused(
    server: LocalServer, connects: list[str], monkeypatch: pytest.MonkeyPatch, resolved: list[str]
) -> None:
    async def resolve(host: str, port: int) -> list[source.IPAddress]:
        assert host == "images.example"
        return [ipaddress.ip_address(a) for a in resolved]

    monkeypatch.setattr(source, "resolve", resolve)
    error = refused(server.url("/image", host="images.example"), settings())
    assert error.status_code == 400
    assert error.detail == f"source: the address 127.0.0.1 is loopback; {PRIVATE_REFUSED}"
    assert server.recorder.connections == 0 and connects == []


# 4 ----------------------------------------------------------------------------------------------


def test_the_allowed_first_hop_reaches_the_checked_address_with_the_original_host(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    map_name_to_loopback(monkeypatch, "images.example")
    url = server.url("/image", host="images.example")
    assert run(read_source(url, settings())) == TINY_PNG
    assert server.recorder.hosts == [f"images.example:{server.server_port}"]


@pytest.mark.parametrize(
    ("target", "detail"),
    [
        ("http://127.0.0.1:{port}/target", f"source: the address 127.0.0.1 is loopback; {PRIVATE_REFUSED}"),
        (
            "http://169.254.169.254/latest/meta-data/",
            f"source: the address 169.254.169.254 is link-local; {PRIVATE_REFUSED}",
        ),
        ("http://[::1]:{port}/target", f"source: the address ::1 is loopback; {PRIVATE_REFUSED}"),
        (
            "http://[::ffff:127.0.0.1]:{port}/target",
            # Python 3.11 writes the mapped address in hex; the reason names the IPv4 one
            f"source: the address ::ffff:7f00:1 is loopback (IPv4-mapped 127.0.0.1); {PRIVATE_REFUSED}",
        ),
        ("file:///etc/passwd", "source: only http and https URLs are accepted"),
    ],
)
def test_redirects_to_private_targets_are_refused_before_connecting(
    server: LocalServer, connects: list[str], monkeypatch: pytest.MonkeyPatch, target: str, detail: str
) -> None:
    map_name_to_loopback(monkeypatch, "images.example")
    location = target.format(port=server.server_port)
    url = server.url(f"/to?url={quote(location, safe='')}", host="images.example")
    error = refused(url, settings())
    assert error.status_code == 400
    assert error.detail == detail
    assert server.recorder.requests == Counter({"/to": 1})  # the target path got nothing
    assert connects == ["127.0.0.1"]  # the first hop only: never 169.254.169.254, never ::1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("certified", ["images.example", "other.example"])
def test_https_to_the_checked_address_verifies_the_original_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certified: str
) -> None:
    """TLS to 127.0.0.1 succeeds only when the certificate names the URL's host (sent as SNI)."""
    ca, leaf, key = make_certificate(tmp_path, certified)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(leaf, key)
    client_context = ssl.create_default_context(cafile=str(ca))
    monkeypatch.setattr(source, "_ssl_context", lambda: client_context)
    map_name_to_loopback(monkeypatch, "images.example")
    httpd = LocalServer()
    httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
    httpd.start()
    try:
        url = f"https://images.example:{httpd.server_port}/image"
        if certified == "images.example":
            assert run(read_source(url, settings())) == TINY_PNG
            assert httpd.recorder.hosts == [f"images.example:{httpd.server_port}"]
        else:
            error = refused(url, settings())
            assert error.status_code == 400
            assert error.detail == "source: the TLS certificate of images.example could not be verified"
            assert httpd.recorder.requests == Counter()
    finally:
        httpd.close()


# 5 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_GET",
        "ftp://127.0.0.1/image.png",
        "FILE:///etc/passwd",
        "javascript:alert(1)",
        "ws://127.0.0.1/",
    ],
)
def test_other_schemes_are_refused(connects: list[str], value: str) -> None:
    error = refused(value, settings(source_allow_private=True))
    assert error.status_code == 400
    assert error.detail == "source: only http and https URLs are accepted"
    assert connects == []


# 6, 7, 8, 9 -------------------------------------------------------------------------------------


def test_an_endless_body_stops_at_the_limit_and_the_connection_is_closed(server: LocalServer) -> None:
    limit = 1024 * 1024
    error = refused(server.url("/forever"), settings(source_allow_private=True, max_upload_bytes=limit))
    assert error.status_code == 413
    assert error.detail == f"source: the download exceeds the limit of {limit} bytes"
    assert server.recorder.forever_closed.wait(timeout=10), "the server kept writing: connection not closed"
    assert server.recorder.forever_sent < 64 * limit  # kernel buffers aside, the reading stopped early


def test_an_announced_oversize_body_is_refused_before_reading(server: LocalServer) -> None:
    error = refused(server.url("/image"), settings(source_allow_private=True, max_upload_bytes=10))
    assert error.status_code == 413
    assert error.detail == f"source: the server announced {len(TINY_PNG)} bytes; the limit is 10 bytes"


def test_a_trickling_body_ends_at_the_total_deadline(server: LocalServer) -> None:
    before = outcome_count("timeout")
    start = time.monotonic()
    error = refused(server.url("/slow"), settings(source_allow_private=True, source_timeout_s=1.5))
    elapsed = time.monotonic() - start
    assert error.status_code == 400
    assert error.detail == "source: the download took longer than 1.5 s"
    assert 1.4 <= elapsed < 3.0
    assert outcome_count("timeout") == before + 1


def test_a_404_is_refused_naming_the_status(server: LocalServer) -> None:
    error = refused(server.url("/missing"), settings(source_allow_private=True))
    assert error.status_code == 400
    assert error.detail == "source: the server answered 404"


def test_an_html_page_comes_back_and_the_decoder_refuses_it(server: LocalServer) -> None:
    data = run(read_source(server.url("/page.html"), settings(source_allow_private=True)))
    assert data == HTML
    with pytest.raises(InvalidImage) as caught:
        decode_image(data, 40_000_000)
    assert caught.value.status_code == 400


# 10 ---------------------------------------------------------------------------------------------


def test_three_redirects_are_followed(server: LocalServer) -> None:
    assert run(read_source(server.url("/hop/3"), settings(source_allow_private=True))) == TINY_PNG
    assert server.recorder.requests == Counter({"/hop/3": 1, "/hop/2": 1, "/hop/1": 1, "/hop/0": 1})


def test_a_fourth_redirect_is_refused(server: LocalServer) -> None:
    error = refused(server.url("/hop/4"), settings(source_allow_private=True))
    assert error.status_code == 400
    assert error.detail == "source: more than 3 redirects"
    assert server.recorder.requests["/hop/0"] == 0  # the 4th target is never requested


# 11 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(TINY_PNG).decode(),
        "data:image/png;base64," + base64.b64encode(TINY_PNG).decode(),
        "DATA:image/png;BASE64," + base64.b64encode(TINY_PNG).decode(),
        base64.encodebytes(TINY_PNG).decode(),  # line-wrapped
        base64.urlsafe_b64encode(TINY_PNG).decode().rstrip("="),  # URL-safe, unpadded
    ],
)
def test_base64_is_decoded(connects: list[str], value: str) -> None:
    before = outcome_count("base64")
    assert run(read_source(value, settings())) == TINY_PNG
    assert connects == []
    assert outcome_count("base64") == before + 1


@pytest.mark.parametrize("value", ["not base64!", "data:image/png;base64,@@@@", "iVBORw0KGgoA=B", "A"])
def test_invalid_base64_is_refused(value: str) -> None:
    before = outcome_count("invalid_base64")
    error = refused(value, settings())
    assert error.status_code == 400
    assert error.detail == "source: invalid base64 (a URL must start with http:// or https://)"
    assert outcome_count("invalid_base64") == before + 1


def test_a_data_uri_that_is_not_a_base64_image_is_refused() -> None:
    error = refused("data:text/html,<script>", settings())
    assert error.status_code == 400
    assert error.detail == "source: only data:image/...;base64, URIs are accepted"


def test_more_than_4096_characters_are_refused(connects: list[str]) -> None:
    assert len(base64.b64encode(b"\0" * 3072)) == 4096
    assert run(read_source(base64.b64encode(b"\0" * 3072).decode(), settings())) == b"\0" * 3072
    for value in ("A" * 4097, "http://127.0.0.1/" + "a" * 4096):
        error = refused(value, settings(source_allow_private=True))
        assert error.status_code == 400
        assert error.detail == f"source: {len(value)} characters; the limit is 4096"
    assert connects == []


def test_decoded_base64_over_the_upload_limit_is_413() -> None:
    error = refused(base64.b64encode(TINY_PNG).decode(), settings(max_upload_bytes=10))
    assert error.status_code == 413
    assert error.detail == f"source: the decoded image is {len(TINY_PNG)} bytes; the limit is 10 bytes"


def test_empty_is_refused() -> None:
    error = refused("  ", settings())
    assert error.status_code == 400
    assert error.detail == "source: empty; send an http(s) URL or a base64 image"


# 12 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback (IPv4-mapped 127.0.0.1)"),
        ("::ffff:169.254.169.254", "link-local (IPv4-mapped 169.254.169.254)"),
        ("64:ff9b::7f00:1", "loopback (NAT64 127.0.0.1)"),
        ("2002:a00:1::", "private (6to4 10.0.0.1)"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("127.0.0.2", "loopback"),
        ("100.64.0.1", "not globally routable"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_the_address_check(address: str, reason: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


def test_the_setting_allows_private_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve(host: str, port: int) -> list[source.IPAddress]:
        return [ipaddress.ip_address("10.0.0.1")]

    monkeypatch.setattr(source, "resolve", resolve)
    allowed = run(source.checked_addresses("intranet.example", 80, True))
    assert allowed == [ipaddress.ip_address("10.0.0.1")]
    error = refused("http://intranet.example/x.png", settings())
    assert error.detail == f"source: the address 10.0.0.1 is private; {PRIVATE_REFUSED}"


# 13 ---------------------------------------------------------------------------------------------


async def fetch_together(url: str, config: Settings, count: int) -> list[bytes | BaseException]:
    return await asyncio.gather(*(read_source(url, config) for _ in range(count)), return_exceptions=True)


@pytest.mark.parametrize("cap", [1, 2])
def test_fetches_queue_for_a_slot(server: LocalServer, cap: int) -> None:
    config = settings(source_allow_private=True, source_max_concurrent=cap)
    start = time.monotonic()
    results = run(fetch_together(server.url("/held"), config, 2))
    elapsed = time.monotonic() - start
    assert results == [TINY_PNG, TINY_PNG]
    assert server.recorder.max_active == cap
    assert elapsed >= (2 * HOLD_S if cap == 1 else HOLD_S) - 0.1


def test_a_fetch_waiting_past_the_deadline_for_a_slot_fails_at_the_deadline(server: LocalServer) -> None:
    config = settings(source_allow_private=True, source_max_concurrent=1, source_timeout_s=1.5)
    results = run(fetch_together(server.url("/held"), config, 2))
    assert results[0] == TINY_PNG
    assert isinstance(results[1], ServingError) and results[1].status_code == 400
    assert results[1].detail == "source: the download took longer than 1.5 s"
    assert server.recorder.max_active == 1
