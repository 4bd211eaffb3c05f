"""The ten formats of the Platform's Predict tab (and GIF), decoded as Ultralytics reads each, and
each one's hostile files: a bomb, a truncated file and 300 seeded mutants, every one a decoded image
or a 400 in bounded time and memory, the process up (over HTTP: tests/integration/test_formats.py)."""

from __future__ import annotations

import os
import signal
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from frontend.errors import InvalidImage
from frontend.serving import isolate
from frontend.serving.form import parse_options
from frontend.serving.imaging import IN_PROCESS, decode_image, sniff
from frontend.serving.video_input import sniff_video
from pipeline.contract import form_schema
from tests.helpers.formats import FORMATS, SUFFIX, bomb, encode, mutations, rotated

LIMIT = 40_000_000
SNIFFED = {"mpo": "jpeg"}  # an MPO is a JPEG followed by more pictures


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB picture with edges and colour (smooth noise under a few flat shapes)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = np.kron(small, np.ones((8, 8, 1), np.uint8))[:height, :width].copy()
    image[height // 4 : height // 2, width // 4 : width // 2] = (220, 30, 30)
    image[height // 2 :, width // 2 :: 3] = (20, 200, 40)
    return image


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return picture(120, 160)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_exactly_as_ultralytics_imread(
    fmt: str, rgb: np.ndarray, tmp_path: Path
) -> None:
    from ultralytics.utils.patches import imread

    data = encode(rgb, fmt)
    path = tmp_path / f"image{SUFFIX[fmt]}"
    path.write_bytes(data)
    assert sniff(data) == SNIFFED.get(fmt, fmt)
    ours = decode_image(data, LIMIT)
    if fmt == "gif":  # a video to Ultralytics: its first frame, as the video loader reads it
        import cv2

        capture = cv2.VideoCapture(str(path))
        ok, theirs = capture.read()
        capture.release()
        assert ok
        assert ours.shape == theirs.shape and np.abs(ours.astype(int) - theirs).max() <= 8
        return
    theirs = imread(str(path))
    assert theirs is not None and ours.dtype == np.uint8 and ours.flags.c_contiguous
    assert np.array_equal(ours, theirs), fmt


@pytest.mark.parametrize("fmt", ["jpeg", "heic"])
def test_exif_rotated_jpeg_and_heic_are_upright_as_ultralytics_reads_them(
    fmt: str, rgb: np.ndarray, tmp_path: Path
) -> None:
    from ultralytics.utils.patches import imread

    data = rotated(rgb, fmt)
    path = tmp_path / f"rotated{SUFFIX[fmt]}"
    path.write_bytes(data)
    ours = decode_image(data, LIMIT)
    assert ours.shape == (160, 120, 3)  # turned a quarter: 120x160 stored, 160 wide shown... upright
    assert np.array_equal(ours, imread(str(path)))


def test_a_still_image_in_an_iso_media_file_is_not_a_video(rgb: np.ndarray) -> None:
    for fmt in ("heic", "avif"):
        head = encode(rgb, fmt)[:512]
        assert sniff_video(head) is None, fmt
        assert sniff(head) == fmt
    mp4 = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41"
    assert sniff_video(mp4) == "mp4"
    assert sniff(mp4) is None
    quicktime = b"\0\0\0\x14ftypqt  \0\0\0\0qt  "
    assert sniff_video(quicktime) == "mp4"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bomb_of_each_format_is_refused_from_its_header(fmt: str) -> None:
    """Huge stated dimensions in a tiny file: a 400 before any pixel is decoded, at once, with
    little memory (this process's, traced; a worker's is capped: test_workers_are_capped)."""
    data = bomb(fmt)
    assert len(data) < 10_000, fmt
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InvalidImage, match=r"too large|limit|not a readable|could not be decoded"):
            decode_image(data, LIMIT)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 3, f"{fmt}: {elapsed:.2f} s"  # a worker's first start is in it
    assert peak < 20 * 2**20, f"{fmt}: {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_truncated_file_of_each_format_is_refused(fmt: str, rgb: np.ndarray) -> None:
    data = encode(picture(240, 320, seed=1), fmt)
    cut = len(data) // 4 if fmt in ("mpo", "gif") else len(data) // 2  # an MPO: within its first picture
    with pytest.raises(InvalidImage):
        decode_image(data[:cut], LIMIT)


@pytest.mark.parametrize("fmt", FORMATS)
def test_300_mutants_of_each_format_are_decoded_or_refused(fmt: str) -> None:
    """Seeded mutants (bytes flipped and overwritten, chunks cut and repeated, truncations): each is
    a BGR image within the limit or an `InvalidImage`, never another exception, a crash or a hang.
    The in-process decoders (JPEG, PNG, WebP, GIF) run in this test's own process: a crash fails the
    run; the others run in workers, which a crash costs one decode."""
    limit = 1_000_000
    outcomes = {"decoded": 0, "refused": 0}
    start = time.perf_counter()
    for mutant in mutations(encode(picture(48, 64, seed=2), fmt), 300, seed=30):
        t = time.perf_counter()
        try:
            image = decode_image(mutant, limit)
        except InvalidImage:
            outcomes["refused"] += 1
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert image.shape[0] * image.shape[1] <= limit
            outcomes["decoded"] += 1
        assert time.perf_counter() - t < isolate.DECODE_SECONDS + 2
    elapsed = time.perf_counter() - start
    print(f"{fmt}: {outcomes} in {elapsed:.2f} s")
    assert outcomes["refused"] > 0, outcomes
    assert elapsed < 30, f"{fmt}: {elapsed:.1f} s"


def test_the_new_formats_are_decoded_in_worker_processes() -> None:
    assert frozenset({"jpeg", "png", "webp", "gif"}) == IN_PROCESS
    decode_image(encode(picture(16, 16), "bmp"), LIMIT)
    assert isolate.workers(), "no worker process was used"


def test_workers_are_capped_in_memory(rgb: np.ndarray) -> None:
    decode_image(encode(rgb, "tiff"), LIMIT)
    for pid in isolate.workers():
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
        soft = int(line.split()[3])
        assert soft < 8 * 2**30, line  # "unlimited" would not parse


def test_a_decode_past_its_time_is_killed_and_the_next_one_served(
    rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = encode(picture(1200, 1600, seed=3), "jp2")
    decode_image(encode(rgb, "jp2"), LIMIT)  # a warm worker
    monkeypatch.setattr(isolate, "DECODE_SECONDS", 0.001)
    with pytest.raises(InvalidImage, match="longer than"):
        decode_image(big, LIMIT)
    monkeypatch.undo()
    assert decode_image(encode(rgb, "jp2"), LIMIT).shape == (120, 160, 3)


def test_a_worker_that_died_is_replaced(rgb: np.ndarray) -> None:
    decode_image(encode(rgb, "heic"), LIMIT)
    for pid in isolate.workers():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    assert decode_image(encode(rgb, "heic"), LIMIT).shape == (120, 160, 3)


def test_iou_defaults_to_070_in_the_platform_contract_and_045_in_the_seed_contract() -> None:
    assert parse_options({}, "platform").iou == 0.70
    assert parse_options({}, "seed").iou == 0.45
    assert parse_options({"iou": "0.3"}, "platform").iou == 0.3
    assert form_schema(contract="platform")["properties"]["iou"]["default"] == 0.70  # type: ignore[index]
    assert form_schema(contract="seed")["properties"]["iou"]["default"] == 0.45  # type: ignore[index]
