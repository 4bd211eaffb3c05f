"""A local HTTP server on 127.0.0.1 that serves one image for `source` URL tests.

It counts the GETs it gets (a refused URL must reach it zero times); when `gated`, each GET waits
for `release` before answering, so a test can hold fetches (and the inference slots they sit in).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ImageServer(ThreadingHTTPServer):
    def __init__(self, image: bytes, gated: bool = False) -> None:
        self.image, self.requests, self.gated = image, 0, gated
        self.release, self.lock = threading.Event(), threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server = self.server
                assert isinstance(server, ImageServer)
                with server.lock:
                    server.requests += 1
                if server.gated:
                    server.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(server.image)))
                self.end_headers()
                self.wfile.write(server.image)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/image.jpg"


@contextmanager
def serving(image: bytes, gated: bool = False) -> Iterator[ImageServer]:
    """The server running on a thread; released and shut down on exit."""
    server = ImageServer(image, gated)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
