"""Hostile images for the reliability cases (shared/reference/reliability.md, Part C): files in
formats Trident refuses, and decompression bombs that are small on the wire."""

from __future__ import annotations

import io
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_of_zeros(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A valid PNG of `width x height` zero pixels, its IDAT streamed through zlib row by row
    (a 50000x50000 bit image is about 300 KB and never exists uncompressed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    channels = {0: 1, 2: 3}[color_type]
    row = b"\0" * (1 + (width * channels * bit_depth + 7) // 8)  # filter byte + packed samples
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * min(1000, height - i)) for i in range(0, height, 1000)]
    idat = b"".join(parts) + compressor.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([bit_depth, color_type, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def disallowed_formats() -> dict[str, bytes]:
    image = Image.new("RGB", (16, 16), (1, 2, 3))
    files = {fmt: encode(image, fmt) for fmt in ("EPS", "PDF", "ICO", "PPM", "TGA")}
    files["PSD"] = b"8BPS\x00\x01" + b"\0" * 6 + b"\x00\x03\x00\x00\x00\x10\x00\x00\x00\x10\x00\x08\x00\x03"
    files["FITS"] = b"SIMPLE  =                    T" + b" " * 50 + b"BITPIX  =                    8"
    return files


def decompression_bombs() -> dict[str, bytes]:
    return {
        "50000x50000 1-bit": png_of_zeros(50_000, 50_000, bit_depth=1),
        "30000x30000 8-bit": png_of_zeros(30_000, 30_000),
    }
