"""A webhook receiver on loopback for the stream tests: records every POST (headers, body, what it
answered) and answers 200, or 500 for a while (`fail_for`), or a given status once (`answer_once`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # lower-cased names
    body: bytes
    answered: int
    at: float  # time.time()


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._fail_until = 0.0
        self._once: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver._answer()
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Received(headers, body, status, time.time()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=hooksecret"

    def _answer(self) -> int:
        with self._lock:
            if self._once:
                return self._once.pop(0)
        return 500 if time.monotonic() < self._fail_until else 200

    def fail_for(self, seconds: float) -> None:
        self._fail_until = time.monotonic() + seconds

    def answer_once(self, status: int) -> None:
        with self._lock:
            self._once.append(status)

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.answered == 200]

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
