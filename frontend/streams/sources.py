"""A stream's source URL: which schemes are read, what may be shown of it, and where it may connect.

- `rtsp://` and `rtsps://` are read by OpenCV's FFmpeg; `http://` and `https://` are read as MJPEG
  (`multipart/x-mixed-replace`, what IP cameras serve) by Trident's own reader
  (`frontend.streams.readers`), which connects only to the address it checked and follows no
  redirect.
- Credentials in the URL (`rtsp://user:password@camera/...`) are kept in the database, because
  reconnecting needs them, and nowhere else: `redact` is what answers, logs and errors show
  (userinfo replaced by `***`, and the query string dropped: tokens often live there).
- Addresses follow the predict `source` policy (`frontend.serving.source.address_refusal`): every
  address the host resolves to must be global unless `TRIDENT_SOURCE_ALLOW_PRIVATE`. The check is
  made when the stream is created (a 400) and again before every connection (the name may resolve
  elsewhere by then); the reader then connects to the checked address itself (the URL's host
  replaced by it), so a DNS answer that changes between check and connect cannot redirect it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from frontend.serving.source import IPAddress, address_refusal, resolve

SCHEMES = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
MAX_URL_CHARS = 2048


class SourceRefused(Exception):
    """Why a URL may not be a stream's source (said to the client, or as the stream's error)."""


@dataclass(frozen=True)
class SourceUrl:
    raw: str
    parts: SplitResult

    @property
    def scheme(self) -> str:
        return self.parts.scheme.lower()

    @property
    def host(self) -> str:
        return self.parts.hostname or ""

    @property
    def port(self) -> int:
        return self.parts.port or SCHEMES[self.scheme]

    def redacted(self) -> str:
        return redact(self.raw)

    def at(self, address: IPAddress) -> str:
        """The URL with its host replaced by `address` (credentials, port, path kept)."""
        host = f"[{address}]" if address.version == 6 else str(address)
        userinfo = self.parts.netloc.rpartition("@")[0]
        netloc = (
            (f"{userinfo}@" if userinfo else "") + host + (f":{self.parts.port}" if self.parts.port else "")
        )
        return urlunsplit(self.parts._replace(netloc=netloc))


def redact(url: str) -> str:
    """What may be shown of a source URL: no userinfo, no query, no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        userinfo = "***@" if "@" in parts.netloc else ""
        return urlunsplit((parts.scheme, userinfo + host, parts.path, "", ""))
    except ValueError:
        return "<invalid URL>"


class RedactedUrls(logging.Filter):
    """httpx logs each request's URL at INFO (`HTTP Request: POST http://...?token=...`): the URLs
    of the records of its logger are redacted, so an operator who turns INFO on sees no secret of
    a source or webhook URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(RedactedUrls())


def parse_source(text: str) -> SourceUrl:
    """A URL of a scheme streams read, with a host and a valid port, or `SourceRefused`."""
    text = text.strip()
    if len(text) > MAX_URL_CHARS:
        raise SourceRefused(f"source: longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise SourceRefused("source: not a valid URL") from None
    if parts.scheme.lower() not in SCHEMES:
        raise SourceRefused("source: only rtsp://, rtsps://, http:// and https:// (MJPEG) URLs are accepted")
    if not parts.hostname:
        raise SourceRefused("source: the URL has no host")
    return SourceUrl(text, parts)


async def checked_address(url: SourceUrl, allow_private: bool) -> IPAddress:
    """The address to connect to: the first the host resolves to, all of them allowed."""
    try:
        addresses = await resolve(url.host, url.port)
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        raise SourceRefused(f"source: the host {url.host} could not be resolved")
    if not allow_private:
        for address in addresses:
            reason = address_refusal(address)
            if reason is not None:
                raise SourceRefused(
                    f"source: the address {address} is {reason}; private addresses are refused"
                )
    return addresses[0]


def checked_address_sync(url: SourceUrl, allow_private: bool) -> IPAddress:
    """`checked_address` from a reader's thread."""
    return asyncio.run(checked_address(url, allow_private))


def probe(address: IPAddress, port: int, timeout_s: float) -> None:
    """A TCP connection opened and closed, so that a source that never answers says so plainly
    (FFmpeg's own error is a bare 'could not open'); `SourceRefused` with why."""
    try:
        with socket.create_connection((str(address), port), timeout=timeout_s):
            return
    except TimeoutError:
        raise SourceRefused(f"no answer from port {port} within {timeout_s:g} s") from None
    except ConnectionRefusedError:
        raise SourceRefused(f"connection to port {port} refused") from None
    except OSError as exc:
        raise SourceRefused(
            f"could not connect to port {port} ({exc.strerror or type(exc).__name__})"
        ) from None
