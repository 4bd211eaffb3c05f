"""A stream's webhook: each processed frame's event POSTed, signed, in order, to a URL of the
stream's owner.

- The URL follows the `source` policy as a stream's source does (`frontend.streams.sources`):
  http or https, every address its host resolves to global unless `TRIDENT_SOURCE_ALLOW_PRIVATE`,
  checked at creation (a 400) and again before every POST, the connection made to the checked
  address itself (the `Host` header and TLS name kept), no proxy, no redirect followed.
- Each POST carries `X-Trident-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 of
  `<t>.<body>` under the stream's secret (`whsec_...`, answered once, when the stream is created).
  A receiver recomputes it (`verify` is the reference) and refuses a `t` too far from its clock, so
  a captured request cannot be replayed later. Each try is signed afresh.
- One delivery at a time, oldest first: a receiver sees the events in order. A 5xx, 408, 429, a
  timeout or a broken connection is tried again after 0.5 s, 1 s, 2 s ... (up to
  `stream_webhook_backoff_max_s`), `stream_webhook_attempts` tries in all; then, or at once for
  any other answer that is not a 2xx, the event is failed and the next one goes.
- Events wait in a bounded queue (`stream_webhook_queue`): when it is full the oldest waiting event
  is dropped and counted, so a slow or dead receiver costs a bounded amount of memory.
- Delivered, failed, retried and dropped are counted (`GET /api/streams/{id}` and the metrics,
  labelled by the stream's id). The secret is in no answer after the creation, no log, no metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import secrets
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx

from core.digests import same_text
from frontend.metrics import record_stream_webhook
from frontend.serving.source import IPAddress
from frontend.streams.readers import backoff_s
from frontend.streams.sources import SourceRefused, SourceUrl, checked_address, parse_source, redact

log = logging.getLogger("trident.streams")

SIGNATURE_HEADER = "X-Trident-Signature"
EVENT_ID_HEADER = "X-Trident-Event-Id"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
TOLERANCE_S = 300  # what docs/api/streams.md advises a receiver to accept
RETRIED_STATUSES = frozenset({408, 429})
USER_AGENT = "Trident-webhook/1"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = TOLERANCE_S) -> bool:
    """What a receiver does: the header parsed, its time within `tolerance_s` of `now`, its MAC
    equal (in constant time) to the one recomputed over the exact bytes received."""
    fields = dict(part.partition("=")[::2] for part in header.split(","))
    timestamp = fields.get("t", "")
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > tolerance_s:
        return False  # `isdigit` alone takes "²", which `int` refuses
    expected = sign(secret, int(timestamp), body).rpartition("v1=")[2]
    return same_text(expected, fields.get("v1", ""))


def parse_webhook(text: str) -> SourceUrl:
    """An http(s) URL with a host, or `SourceRefused` (the messages say `webhook_url`)."""
    try:
        url = parse_source(text)
    except SourceRefused as exc:
        raise SourceRefused(str(exc).replace("source:", "webhook_url:", 1)) from None
    if url.scheme not in ("http", "https"):
        raise SourceRefused("webhook_url: only http:// and https:// URLs are accepted")
    return url


async def check_webhook(url: SourceUrl, allow_private: bool) -> IPAddress:
    """The address to POST to, all of the host's allowed, or `SourceRefused`."""
    try:
        return await checked_address(url, allow_private)
    except SourceRefused as exc:
        raise SourceRefused(str(exc).replace("source:", "webhook_url:", 1)) from None


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class WebhookConfig:
    allow_private: bool
    queue: int
    attempts: int
    timeout_s: float
    backoff_max_s: float


class Webhook:
    """One stream's deliveries: `put` queues an event (never blocks), a task sends them."""

    def __init__(self, stream_id: str, url: str, secret: str, config: WebhookConfig) -> None:
        self.stream_id = stream_id
        self.url = parse_webhook(url)
        self._secret = secret
        self.config = config
        self.queue: deque[tuple[str, bytes]] = deque()
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self.dropped = 0
        self.last_error = ""
        self.sending = False
        self._more = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:  # never the secret, never the URL's query
        return f"Webhook({self.stream_id}, {redact(self.url.raw)})"

    def counts(self) -> dict[str, Any]:
        return {
            "url": redact(self.url.raw),
            "delivered": self.delivered,
            "failed": self.failed,
            "retried": self.retried,
            "dropped": self.dropped,
            "queued": len(self.queue) + int(self.sending),
            "last_error": self.last_error,
        }

    def put(self, event_id: str, body: bytes) -> None:
        if len(self.queue) >= self.config.queue:
            self.queue.popleft()
            self.dropped += 1
            record_stream_webhook(self.stream_id, "dropped")
        self.queue.append((event_id, body))
        self._more.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"webhook {self.stream_id}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        client = httpx.AsyncClient(
            verify=_ssl_context(),
            trust_env=False,  # a proxy would resolve the name itself, after the check
            follow_redirects=False,
            timeout=httpx.Timeout(self.config.timeout_s),
        )
        async with client:
            while True:
                while not self.queue:
                    self._more.clear()
                    await self._more.wait()
                event_id, body = self.queue.popleft()
                self.sending = True
                try:
                    await self._deliver(client, event_id, body)
                finally:
                    self.sending = False

    async def _deliver(self, client: httpx.AsyncClient, event_id: str, body: bytes) -> None:
        for attempt in range(1, self.config.attempts + 1):
            retry = True
            try:
                status = await self._post(client, event_id, body)
            except SourceRefused as exc:
                error, retry = str(exc), False
            except httpx.TimeoutException:
                error = f"no answer within {self.config.timeout_s:g} s"
            except (httpx.HTTPError, OSError) as exc:
                error = f"could not deliver ({type(exc).__name__})"
            except Exception as exc:  # the delivery task must outlive whatever a receiver does
                error, retry = f"could not deliver ({type(exc).__name__})", False
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    record_stream_webhook(self.stream_id, "delivered")
                    self.last_error = ""
                    return
                error = f"the receiver answered HTTP {status}"
                retry = status >= 500 or status in RETRIED_STATUSES
            if error != self.last_error:
                log.warning("stream %s: webhook %s: %s", self.stream_id, redact(self.url.raw), error)
            self.last_error = error
            if not retry or attempt == self.config.attempts:
                break
            self.retried += 1
            record_stream_webhook(self.stream_id, "retried")
            await asyncio.sleep(backoff_s(attempt, self.config.backoff_max_s))
        self.failed += 1
        record_stream_webhook(self.stream_id, "failed")

    async def _post(self, client: httpx.AsyncClient, event_id: str, body: bytes) -> int:
        address = await check_webhook(self.url, self.config.allow_private)
        url = self.url
        host = url.host if ":" not in url.host else f"[{url.host}]"
        headers = {
            "Host": host if url.parts.port is None else f"{host}:{url.parts.port}",
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: sign(self._secret, int(time.time()), body),
        }
        target = httpx.URL(url.raw).copy_with(host=str(address))
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        request = client.build_request("POST", target, headers=headers, content=body, extensions=extensions)
        response = await client.send(request, stream=True)
        await response.aclose()  # the body is not read
        return response.status_code
