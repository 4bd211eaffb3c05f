"""Local cameras for the stream tests, on loopback: an HTTP MJPEG server (`multipart/x-mixed-replace`
over `http.server` in a thread) that plays frames in a loop at a given rate, and servers that
misbehave (one that accepts and never answers, one that sends garbage)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

BOUNDARY = "trident-frame"


class MjpegCamera:
    """Serves `frames` (BGR) as MJPEG at `fps`, looping, at `url`; `stop()` and `start()` take it
    off the network and back on the same port (connections open at the stop are cut)."""

    def __init__(self, frames: list[np.ndarray[Any, Any]], fps: float, port: int = 0) -> None:
        self.jpegs = [bytes(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1]) for f in frames]
        self.fps = fps
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.served = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def start(self) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                i = 0
                try:
                    while camera.server is server:
                        jpeg = camera.jpegs[i % len(camera.jpegs)]
                        head = (
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                        )
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                        camera.served += 1
                        i += 1
                        time.sleep(1 / camera.fps)
                except OSError:
                    return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self.port = server.server_address[1]
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()


@contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


@contextmanager
def garbage_server() -> Iterator[str]:
    """An http URL answering 200 with a multipart type and bytes that are no image."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.end_headers()
            junk = bytes(range(256)) * 8
            head = f"--{BOUNDARY}\r\nContent-Length: {len(junk)}\r\n\r\n".encode()
            try:
                for _ in range(50):
                    self.wfile.write(head + junk + b"\r\n")
                    time.sleep(0.05)
            except OSError:
                return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cam"
    finally:
        server.shutdown()
        server.server_close()
