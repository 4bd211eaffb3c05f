"""Decoders that could take the process down run in worker processes, one request at a time each.

TIFF, DNG, BMP, JP2, HEIC and AVIF are decoded by C libraries new to Trident (libtiff, OpenJPEG,
libheif and libde265, libavif and dav1d). Each decode is sent to a worker process
(`python -m frontend.serving.isolate`, which imports the decoders once: about half a second to
start), whose address space is capped at its baseline plus `memory_budget(max_pixels)` and which
is given `DECODE_SECONDS`: a decoder that segfaults, aborts, loops or runs out of memory costs that
request a 400, and the worker is replaced. Healthy workers are reused (a decode costs a copy of the
file and of the pixels through a socket, about a millisecond a megapixel).
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

import numpy as np
from numpy.typing import NDArray

from frontend.errors import InvalidImage

DECODE_SECONDS = 10.0


def memory_budget(max_pixels: int) -> int:
    """Bytes a worker may allocate beyond what it holds at start: room for the largest allowed image
    at 16 bits and 4 channels, its 8-bit BGR copy and the decoders' own buffers."""
    return 256 * 2**20 + 16 * max_pixels


def _vm_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _serve(conn: Connection, max_pixels: int) -> None:
    """A worker's loop: (bytes, format) in; ("ok", shape) and the pixels, or (status, detail), out."""
    import cv2

    from frontend.serving.imaging import decode_checked

    cv2.setNumThreads(1)
    limit = _vm_size() + memory_budget(max_pixels)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            data = conn.recv_bytes()
            fmt = conn.recv()
        except (EOFError, OSError):
            return
        try:
            image = decode_checked(data, fmt, max_pixels)
        except InvalidImage as exc:
            conn.send(("invalid", exc.detail))
        except MemoryError:
            conn.send(("memory", "decoding it needs more memory than an image within the limit"))
        except Exception:
            conn.send(("invalid", f"the {fmt.upper()} file could not be decoded"))
        else:
            conn.send(("ok", image.shape))
            conn.send_bytes(image.tobytes())
        del data


class _Worker:
    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        ours, theirs = socket.socketpair()
        path = os.pathsep.join(p for p in sys.path if p)
        env = {**os.environ, "PYTHONPATH": path, "OPENCV_LOG_LEVEL": "OFF"}  # a bad file is a 400, not a log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "frontend.serving.isolate", str(theirs.fileno()), str(max_pixels)],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self.conn = Connection(ours.detach())

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.conn.close()
        if self.alive():
            self.process.kill()
        self.process.wait(5)


_idle: list[_Worker] = []
_lock = threading.Lock()


def _take(max_pixels: int) -> _Worker:
    with _lock:
        while _idle:
            worker = _idle.pop()
            if worker.max_pixels == max_pixels and worker.alive():
                return worker
            worker.kill()
    return _Worker(max_pixels)


def _give_back(worker: _Worker) -> None:
    with _lock:
        _idle.append(worker)


def workers() -> list[int]:
    """The process ids of the idle workers (for tests and metrics)."""
    with _lock:
        return [w.process.pid for w in _idle]


def shutdown() -> None:
    """Stop every idle worker (a worker busy on another thread stops when its parent exits)."""
    with _lock:
        idle, _idle[:] = list(_idle), []
    for worker in idle:
        worker.kill()


def decode_isolated(data: bytes, fmt: str, max_pixels: int) -> NDArray[np.uint8]:
    """`imaging.decode_checked(data, fmt, max_pixels)` in a worker process, or `InvalidImage`."""
    worker = _take(max_pixels)
    healthy = False
    try:
        worker.conn.send_bytes(data)
        worker.conn.send(fmt)
        if not worker.conn.poll(DECODE_SECONDS):
            raise InvalidImage(f"the {fmt.upper()} file took longer than {DECODE_SECONDS:g} s to decode")
        status, payload = worker.conn.recv()
        if status == "ok":
            image = np.empty(payload, dtype=np.uint8)
            worker.conn.recv_bytes_into(image.data.cast("B"))
            healthy = True
            return image
        healthy = status == "invalid"
        raise InvalidImage(str(payload))
    except (EOFError, OSError):
        raise InvalidImage(f"the {fmt.upper()} file could not be decoded (the decoder failed)") from None
    finally:
        if healthy:
            _give_back(worker)
        else:
            worker.kill()


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
