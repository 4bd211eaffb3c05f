"""Part C's decoder cases that need no server: an EPS never starts Ghostscript, and bombs are
refused from their header in bounded memory and time (over the wire: tests/integration/test_part_c.py)."""

from __future__ import annotations

import subprocess
import time
import tracemalloc

import pytest
from PIL import Image

from tests.helpers.hostile import decompression_bombs, disallowed_formats


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return decompression_bombs()


def test_case_03_eps_never_spawns_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    from frontend.errors import InvalidImage
    from frontend.serving.imaging import decode_image

    def no_subprocess(*_: object, **__: object) -> None:
        raise AssertionError("a subprocess was started while decoding an upload")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    with pytest.raises(InvalidImage, match="unsupported file type"):
        decode_image(disallowed_formats()["EPS"], 40_000_000)


def test_case_06_bombs_are_refused_from_the_header_in_bounded_memory(
    bombs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from frontend.errors import InvalidImage
    from frontend.serving import imaging

    def never(*_: object, **__: object) -> None:
        raise AssertionError("the decoder was called")

    monkeypatch.setattr(imaging.cv2, "imdecode", never)
    monkeypatch.setattr(Image.Image, "load", never)
    for name, bomb in bombs.items():
        assert len(bomb) < 1_000_000, name
        tracemalloc.start()
        start = time.perf_counter()
        try:
            with pytest.raises(InvalidImage, match=r"too large|limit"):
                imaging.decode_image(bomb, 40_000_000)
            elapsed = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert elapsed < 0.1, f"{name}: {elapsed:.3f} s"
        assert peak < 50 * 2**20, f"{name}: {peak / 2**20:.1f} MiB"
