"""Reading a camera on a thread of its own: connect, read frames as fast as the source sends them,
keep only the newest (`LatestFrame`), reconnect with backoff when the source drops.

The reader never waits for the model: a frame the runner did not take before the next one
arrived is replaced and counted as dropped, so memory stays one frame per stream however slow the
model is. Two kinds of source:

- `MjpegSource` (http, https): one GET to the checked address, no redirect followed, the
  `multipart/x-mixed-replace` body split into its parts, each decoded as a JPEG (or any image
  OpenCV reads). A body that is not multipart, or a part that is not an image, is an error.
- `CaptureSource` (rtsp, rtsps): OpenCV's FFmpeg backend, with open and read deadlines.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import cv2
import httpx
import numpy as np
from numpy.typing import NDArray

from frontend.streams.sources import SourceRefused, SourceUrl, checked_address_sync, probe

Image = NDArray[np.uint8]
StatusCallback = Callable[[str, str], None]  # (status, error)


@dataclass(frozen=True)
class Frame:
    number: int  # frames read from the source since the runner started, from 1
    image: Image
    captured: float  # time.time() when it was read whole
    captured_mono: float  # time.monotonic() then, for the lag


class LatestFrame:
    """One slot: the newest frame. A frame replaced before it was taken is a drop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self.read = 0
        self.dropped = 0
        self.wake: Callable[[], None] = lambda: None  # the runner's, called on each new frame

    def put(self, image: Image) -> None:
        with self._lock:
            self.read += 1
            if self._frame is not None:
                self.dropped += 1
            self._frame = Frame(self.read, image, time.time(), time.monotonic())
        self.wake()

    def take(self) -> Frame | None:
        with self._lock:
            frame, self._frame = self._frame, None
            return frame


@dataclass(frozen=True)
class ReaderConfig:
    allow_private: bool
    connect_timeout_s: float
    read_timeout_s: float
    backoff_max_s: float
    give_up_after: int  # consecutive failed connections before `failed`; 0: never
    max_pixels: int
    max_part_bytes: int


class Source(Protocol):
    def frames(self) -> Iterator[Image]: ...
    def close(self) -> None: ...


MULTIPART = "multipart/x-mixed-replace"


class MjpegSource:
    """An MJPEG body's images, one per part."""

    def __init__(self, url: SourceUrl, address: str, config: ReaderConfig) -> None:
        self.config = config
        timeout = httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s)
        self.client = httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout)
        host = url.host if ":" not in url.host else f"[{url.host}]"
        headers = {
            "Host": host if url.parts.port is None else f"{host}:{url.parts.port}",
            "User-Agent": "Trident-stream/1",
            "Accept-Encoding": "identity",
        }
        target = httpx.URL(url.raw).copy_with(host=address)
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        try:
            request = self.client.build_request("GET", target, headers=headers, extensions=extensions)
            self.response = self.client.send(request, stream=True)
        except httpx.TimeoutException:
            self.client.close()
            raise SourceRefused(f"no answer within {config.read_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            self.client.close()
            raise SourceRefused(f"could not connect ({type(exc).__name__})") from None
        status = self.response.status_code
        kind = self.response.headers.get("content-type", "")
        if not 200 <= status < 300:
            self.close()
            raise SourceRefused(f"the source answered HTTP {status}")
        boundary = _boundary(kind)
        if not kind.lower().startswith(MULTIPART) or boundary is None:
            self.close()
            shown = kind.split(";")[0][:64] or "none"
            raise SourceRefused(f"not an MJPEG stream (content type {shown}; {MULTIPART} expected)")
        self.delimiter = b"--" + boundary.encode("latin-1")

    def frames(self) -> Iterator[Image]:
        try:
            for part in _parts(self.response.iter_raw(), self.delimiter, self.config.max_part_bytes):
                image = cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    raise SourceRefused("the source sent a part that is not an image")
                yield np.asarray(image, dtype=np.uint8)
        except httpx.TimeoutException:
            raise SourceRefused(f"no data for {self.config.read_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise SourceRefused(f"the connection broke ({type(exc).__name__})") from None
        raise SourceRefused("the source ended the stream")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.response.close()
        self.client.close()


def _boundary(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value.strip('"'):
            boundary = value.strip('"')
            return boundary[2:] if boundary.startswith("--") else boundary
    return None


def _parts(chunks: Iterator[bytes], delimiter: bytes, limit: int) -> Iterator[bytes]:
    """The bodies of a multipart stream's parts (each part's headers dropped; `Content-Length`
    used when given, else the next delimiter ends the part). More than `limit` bytes without a
    whole part is an error: the buffer is bounded."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while True:
            start = buffer.find(delimiter)
            if start < 0:
                break
            head_end = buffer.find(b"\r\n\r\n", start)
            if head_end < 0:
                break
            headers = bytes(buffer[start + len(delimiter) : head_end]).decode("latin-1").lower()
            body_start = head_end + 4
            length = _content_length(headers)
            if length is not None:
                if len(buffer) < body_start + length:
                    break
                body_end = body_start + length
            else:
                found = buffer.find(b"\r\n" + delimiter, body_start)
                if found < 0:
                    break
                body_end = found
            yield bytes(buffer[body_start:body_end])
            del buffer[:body_end]
        if len(buffer) > limit:
            raise SourceRefused(f"no whole image within {limit} bytes")


def _content_length(headers: str) -> int | None:
    for line in headers.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip() == "content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


class CaptureSource:
    """An RTSP camera through OpenCV's FFmpeg."""

    def __init__(self, url: str, config: ReaderConfig) -> None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(config.connect_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(config.read_timeout_s * 1000),
        ]
        self.capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        if not self.capture.isOpened():
            self.capture.release()
            raise SourceRefused("the source sent nothing OpenCV could decode as video")

    def frames(self) -> Iterator[Image]:
        while True:
            ok, image = self.capture.read()
            if not ok or image is None:
                raise SourceRefused("the source stopped sending frames")
            yield np.asarray(image, dtype=np.uint8)

    def close(self) -> None:
        self.capture.release()


def open_source(url: SourceUrl, config: ReaderConfig) -> Source:
    address = checked_address_sync(url, config.allow_private)
    probe(address, url.port, config.connect_timeout_s)
    if url.scheme in ("http", "https"):
        return MjpegSource(url, str(address), config)
    return CaptureSource(url.at(address), config)


def backoff_s(attempt: int, most: float) -> float:
    """0.5 s, 1 s, 2 s ... up to `most`, after the `attempt`-th failure in a row."""
    return float(min(most, 0.5 * 2 ** max(attempt - 1, 0)))


class Reader:
    """One stream's reading thread: connects, fills `slot`, reconnects; `stop()` ends it."""

    def __init__(
        self, url: SourceUrl, config: ReaderConfig, slot: LatestFrame, report: StatusCallback
    ) -> None:
        self.url = url
        self.config = config
        self.slot = slot
        self.report = report
        self.on_reconnect: Callable[[], None] = lambda: None
        self._stop = threading.Event()
        self._source: Source | None = None
        self._thread = threading.Thread(target=self._run, name="stream-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Asks the thread to end (a read in progress ends at its deadline at the latest)."""
        self._stop.set()
        source = self._source
        if source is not None and isinstance(source, MjpegSource):
            with contextlib.suppress(Exception):
                source.close()  # wakes a blocked read

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            error = ""
            try:
                self._source = open_source(self.url, self.config)
                running = False
                for image in self._source.frames():
                    if self._stop.is_set():
                        return
                    h, w = image.shape[:2]
                    if h * w > self.config.max_pixels:
                        raise SourceRefused(f"frames of {w}x{h} pixels exceed the server's limit")
                    if not running:
                        running, failures = True, 0
                        self.report("running", "")
                    self.slot.put(image)
            except SourceRefused as exc:
                error = str(exc)
            except Exception as exc:  # a reader must outlive whatever a camera sends
                error = f"reading failed ({type(exc).__name__})"
            finally:
                source, self._source = self._source, None
                if source is not None:
                    with contextlib.suppress(Exception):
                        source.close()
            if self._stop.is_set():
                return
            failures += 1
            if self.config.give_up_after and failures >= self.config.give_up_after:
                self.report("failed", f"{error} ({failures} attempts in a row)")
                return
            self.report("reconnecting", error)
            self.on_reconnect()
            self._stop.wait(backoff_s(failures, self.config.backoff_max_s))
