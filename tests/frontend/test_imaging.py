"""Image intake: accepted formats decode to the pixels Ultralytics sees; anything else is refused."""

from __future__ import annotations

import io
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from frontend.errors import InvalidImage
from frontend.serving.imaging import decode_image, sniff

LIMIT = 40_000_000


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_jpeg_decodes_exactly_like_ultralytics_imread(bus: Path) -> None:
    from ultralytics.utils.patches import imread

    assert np.array_equal(decode_image(bus.read_bytes(), LIMIT), imread(str(bus)))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_decode_to_bgr(fmt: str) -> None:
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red
    data = (
        encode(Image.fromarray(rgb), fmt, lossless=True)
        if fmt == "WEBP"
        else encode(Image.fromarray(rgb), fmt)
    )
    bgr = decode_image(data, LIMIT)
    assert bgr.shape == (4, 5, 3)
    assert bgr[0, 0].tolist() == [0, 0, 200]


def test_gif_first_frame_is_used() -> None:
    frames = [Image.new("RGB", (6, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    bgr = decode_image(buffer.getvalue(), LIMIT)
    assert bgr.shape == (4, 6, 3)
    assert bgr[0, 0].tolist() == [0, 0, 255]


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    decoded = decode_image(encode(image, "JPEG", exif=exif), LIMIT)
    assert decoded.shape[:2] == (40, 20)
    assert np.array_equal(decoded, cv2.imdecode(np.frombuffer(encode(image, "JPEG", exif=exif), np.uint8), 1))


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"", "empty"),
        (b"%PDF-1.7 not an image", "unsupported file type"),
        (b"BM" + b"\0" * 100, "unsupported file type"),  # "BM" without a BMP info header
        (b"\xff\xd8\xff\xe0" + b"\0" * 50, "not a readable image"),  # JPEG magic, garbage after it
    ],
)
def test_bad_files_are_invalid_images(data: bytes, detail: str) -> None:
    with pytest.raises(InvalidImage, match=detail):
        decode_image(data, LIMIT)


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    """A 20000x20000 PNG (400 M pixels, ~1 KB compressed) is refused at once, without decoding."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = (20000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 20001 * 50))
    start = time.perf_counter()
    with pytest.raises(InvalidImage, match=r"too large|limit"):
        decode_image(bomb + chunk(b"IEND", b""), LIMIT)
    assert time.perf_counter() - start < 0.5


def test_image_at_the_pixel_limit_is_accepted_and_one_more_is_not() -> None:
    data = encode(Image.new("RGB", (100, 50)), "PNG")
    assert decode_image(data, 5000).shape == (50, 100, 3)
    with pytest.raises(InvalidImage, match="limit"):
        decode_image(data, 4999)


def test_sniff_names_only_allowed_formats() -> None:
    assert sniff(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "webp"
    assert sniff(b"GIF89a") == "gif"
    assert sniff(b"II*\0\x08\0\0\0\0\0") == "tiff"
    assert sniff(b"\0\0\0\x1cftypheic\0\0\0\0mif1heic") == "heic"
    assert sniff(b"\0\0\0\x20ftypavif\0\0\0\0avifmif1miaf") == "avif"
    assert sniff(b"\0\0\0\x18ftypmp42\0\0\0\0isommp42") is None  # an MP4 is a video
    assert sniff(b"%PDF") is None


@pytest.mark.parametrize("mode", ["CMYK", "L", "LA", "RGBA", "P", "1", "I;16"])
def test_every_image_mode_decodes_to_three_channel_bgr(mode: str) -> None:
    """The mode zoo: each decodes to uint8 BGR close to the same picture converted to RGB first."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    if mode == "I;16":
        gray = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
        image = Image.fromarray(gray.astype("<u2"))  # a 16-bit grayscale image
        reference = np.repeat(np.asarray(rgb.convert("L"))[..., None], 3, axis=2)
    else:
        image = rgb.convert(mode)
        reference = np.asarray(image.convert("RGB"))[..., ::-1]
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    decoded = decode_image(encode(image, fmt, quality=100) if fmt == "JPEG" else encode(image, fmt), LIMIT)
    assert decoded.shape == (24, 32, 3) and decoded.dtype == np.uint8
    tolerance = 40 if mode == "CMYK" else 1  # JPEG is lossy; 16-bit is scaled (>> 8), not clipped
    assert np.abs(decoded.astype(int) - reference.astype(int)).mean() <= tolerance


def test_trailing_data_after_a_jpeg_is_ignored(bus: Path) -> None:
    """A polyglot (JPEG + appended ZIP/HTML) decodes as the JPEG it starts with."""
    data = bus.read_bytes()
    polyglot = data + b"PK\x03\x04" + b"<html><script>alert(1)</script></html>" * 100
    assert np.array_equal(decode_image(polyglot, LIMIT), decode_image(data, LIMIT))


def test_a_thousand_frame_gif_decodes_only_its_first_frame() -> None:
    frames = [Image.new("P", (64, 64), i % 256) for i in range(1000)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    start = time.perf_counter()
    decoded = decode_image(buffer.getvalue(), LIMIT)
    assert decoded.shape == (64, 64, 3)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("fmt", ["ICO", "PDF", "EPS", "PPM", "TGA", "PCX"])
def test_formats_outside_the_allowlist_are_refused_without_decoding(fmt: str) -> None:
    image = Image.new("RGB", (16, 16), (1, 2, 3))
    try:
        data = encode(image, fmt)
    except (OSError, KeyError):
        pytest.fail(f"Pillow cannot write {fmt} here")
    with pytest.raises(InvalidImage, match="unsupported file type"):
        decode_image(data, LIMIT)
