"""Real files of every image format Trident takes, made here, and hostile ones of each.

Made with Pillow (PNG, WebP, AVIF, BMP, GIF, JP2 through OpenJPEG, MPO from two JPEGs), OpenCV
(TIFF at 16 bits with alpha), `pillow-heif` (HEIC: the full plugin, which has an encoder; Trident and
Ultralytics decode with `pi-heif`), and a DNG written here: a TIFF whose first IFD carries
DNGVersion, DNGBackwardVersion and UniqueCameraModel over full-size RGB pixels (the layout of a
DNG's first IFD; there is no DNG writer or sample file on this machine).
"""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, TiffImagePlugin, TiffTags

# format -> the suffix Ultralytics reads it by
SUFFIX = {
    "jpeg": ".jpg",
    "png": ".png",
    "webp": ".webp",
    "avif": ".avif",
    "heic": ".heic",
    "jp2": ".jp2",
    "tiff": ".tiff",
    "bmp": ".bmp",
    "dng": ".dng",
    "mpo": ".mpo",
    "gif": ".gif",
}
FORMATS = tuple(SUFFIX)
ORIENTATION = 0x0112


def _pil(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _heic(image: Image.Image, exif: bytes | None = None) -> bytes:
    import pillow_heif  # the encoder; its opener is never registered here

    buffer = io.BytesIO()
    heif = pillow_heif.from_pillow(image)
    heif.save(buffer, quality=90, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def _dng(image: Image.Image) -> bytes:
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, value, kind in (
        (50706, b"\x01\x04\x00\x00", TiffTags.BYTE),  # DNGVersion 1.4
        (50707, b"\x01\x01\x00\x00", TiffTags.BYTE),  # DNGBackwardVersion 1.1
        (50708, "Trident test camera", TiffTags.ASCII),  # UniqueCameraModel
    ):
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    return _pil(image, "TIFF", tiffinfo=ifd)


def encode(rgb: NDArray[np.uint8], fmt: str, second: NDArray[np.uint8] | None = None) -> bytes:
    """`rgb` (h, w, 3) as a file of `fmt` (an MPO's second picture is `second`, else `rgb` flipped)."""
    image = Image.fromarray(rgb)
    if fmt == "jpeg":
        return _pil(image, "JPEG", quality=95)
    if fmt == "png":
        return _pil(image, "PNG")
    if fmt == "webp":
        return _pil(image, "WEBP", quality=90)
    if fmt == "avif":
        return _pil(image, "AVIF", quality=90)
    if fmt == "heic":
        return _heic(image)
    if fmt == "jp2":
        return _pil(image, "JPEG2000", irreversible=True, quality_mode="rates", quality_layers=[20])
    if fmt == "tiff":  # 16 bits a sample, with alpha: Ultralytics keeps the high byte and drops alpha
        rgb16 = rgb.astype(np.uint16) * 257
        bgra = np.dstack([rgb16[..., ::-1], np.full(rgb.shape[:2], 65535, np.uint16)])
        return bytes(cv2.imencode(".tiff", bgra)[1])
    if fmt == "bmp":
        return _pil(image, "BMP")
    if fmt == "dng":
        return _dng(image)
    if fmt == "mpo":
        other = Image.fromarray(second if second is not None else np.ascontiguousarray(rgb[::-1]))
        return _pil(image, "MPO", save_all=True, append_images=[other], quality=95)
    if fmt == "gif":
        return _pil(image, "GIF")
    raise ValueError(fmt)


def rotated(rgb: NDArray[np.uint8], fmt: str, orientation: int = 6) -> bytes:
    """A JPEG or HEIC whose EXIF says to rotate it on display."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    if fmt == "heic":
        return _heic(Image.fromarray(rgb), exif.tobytes())
    return _pil(Image.fromarray(rgb), "JPEG", quality=95, exif=exif)


# --- hostile files -------------------------------------------------------------------------------

HUGE = 100_000  # a side: 10 G pixels stated


def _tiff(width: int, height: int, dng: bool = False) -> bytes:
    """A little-endian grey TIFF stating `width x height` over 16 bytes of pixels."""
    tags = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 0),  # strip offset, set below
        (277, 3, 1),
        (278, 4, height),
        (279, 4, width * height if width * height < 2**32 else 2**32 - 1),
    ]
    if dng:
        tags.append((50706, 1, int.from_bytes(b"\x01\x04\x00\x00", "little")))
    count = len(tags)
    pixels_at = 8 + 2 + 12 * count + 4
    body = b""
    for tag, kind, value in tags:
        value = pixels_at if tag == 273 else value
        n = 4 if kind == 1 else 1
        packed = struct.pack("<I", value) if kind in (4, 1) else struct.pack("<HH", value, 0)
        body += struct.pack("<HHI", tag, kind, n) + packed
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", count) + body + b"\0" * 4 + b"\0" * 16


def _patch(data: bytes, at: int, fmt: str, *values: int) -> bytes:
    packed = struct.pack(fmt, *values)
    return data[:at] + packed + data[at + len(packed) :]


def _png_crc(data: bytes) -> bytes:
    ihdr = data[12:29]
    return data[:29] + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def bomb(fmt: str) -> bytes:
    """A tiny file of `fmt` whose header states far more pixels than any limit (HUGE x HUGE, or the
    largest the format can state)."""
    small = np.full((16, 16, 3), 128, np.uint8)
    data = encode(small, fmt)
    if fmt in ("jpeg", "mpo"):
        at = data.index(b"\xff\xc0") + 5  # SOF0: length, precision, then height and width
        return _patch(data, at, ">HH", 65000, 65000)
    if fmt == "png":
        return _png_crc(_patch(data, 16, ">II", HUGE, HUGE))
    if fmt == "webp":  # lossy VP8: 14-bit width and height after the start code
        at = data.index(b"\x9d\x01\x2a") + 3
        return _patch(data, at, "<HH", 16383, 16383)
    if fmt == "gif":
        return _patch(data, 6, "<HH", 65535, 65535)
    if fmt in ("tiff", "dng"):
        return _tiff(HUGE, HUGE, dng=fmt == "dng")
    if fmt == "bmp":
        return _patch(data, 18, "<ii", HUGE, HUGE)
    if fmt == "jp2":
        at = data.index(b"ihdr") + 4
        data = _patch(data, at, ">II", HUGE, HUGE)
        at = data.index(b"\xff\x51") + 6  # SIZ: Lsiz, Rsiz, then Xsiz and Ysiz
        return _patch(data, at, ">II", HUGE, HUGE)
    if fmt in ("heic", "avif"):
        at = data.index(b"ispe") + 8  # version and flags, then width and height
        return _patch(data, at, ">II", HUGE, HUGE)
    raise ValueError(fmt)


def mutations(data: bytes, n: int, seed: int) -> list[bytes]:
    """`n` seeded mutants of `data`: bytes flipped, overwritten with 0x00/0xff, chunks cut out or
    repeated, and truncations; the first 16 bytes are kept half of the time so most mutants still
    reach the decoder."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = bytearray(data)
        start = 16 if rng.random() < 0.5 else 0
        kind = rng.integers(5)
        if kind == 0:
            for at in rng.integers(start, len(buf), rng.integers(1, 9)):
                buf[at] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            for at in rng.integers(start, len(buf), rng.integers(1, 5)):
                buf[at] = int(rng.choice([0, 0xFF, 0x7F, 0x80]))
        elif kind == 2:
            a = int(rng.integers(start, len(buf)))
            del buf[a : a + int(rng.integers(1, 64))]
        elif kind == 3:
            a = int(rng.integers(start, len(buf)))
            buf[a:a] = buf[a : a + int(rng.integers(1, 64))]
        else:
            buf = buf[: int(rng.integers(1, len(buf)))]
        out.append(bytes(buf))
    return out
