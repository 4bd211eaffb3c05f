"""The only module that decodes images: sniff the format by its bytes, check the size, decode to BGR.

Each format is decoded the way Ultralytics' `imread` (`ultralytics/utils/patches.py`) reads a file
with that format's suffix, so the pixels, and therefore the boxes, match `YOLO(...).predict(file)`:

- JPEG (and MPO, its first picture), PNG, WebP, BMP, JP2 and DNG: `cv2.imdecode(..., IMREAD_COLOR)`
  (EXIF orientation applied where OpenCV reads it, grey and alpha made BGR, 16-bit made 8-bit);
- TIFF: `cv2.imdecodemulti(..., IMREAD_UNCHANGED)`; a colour first page is used as it is stored
  (alpha dropped, no EXIF rotation, 16-bit samples shifted right by 8), a grey one is read again with
  `IMREAD_COLOR`, as Ultralytics does;
- HEIC/HEIF and AVIF: Pillow (AVIF natively, HEIC through `pi-heif`, the plugin Ultralytics
  installs), `ImageOps.exif_transpose`, RGB, then BGR;
- GIF (a video to Ultralytics): its first frame through Pillow, RGB, then BGR.

The dimensions are read from the header before any pixel is decoded (for a TIFF every page's, as
OpenCV decodes them all), so a decompression bomb costs nothing. The decoders new to Trident (TIFF,
DNG, BMP, JP2, HEIC, AVIF: libtiff, OpenJPEG, libheif, libavif/dav1d) run in a worker process
(`frontend.serving.isolate`), with a memory cap and a time limit: a decoder that crashes, aborts,
hangs or runs out of memory costs that one request (a 400), never the API's process.
"""

from __future__ import annotations

import io
import struct
import warnings
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from frontend.errors import InvalidImage

ALLOWED = "JPEG, PNG, WebP, AVIF, HEIC, JP2, TIFF, BMP, DNG, MPO or GIF"
# decoded in this process (OpenCV's libjpeg, libpng, libwebp and Pillow's GIF reader, long hardened);
# every other format is decoded in a worker process (`decode_isolated`)
IN_PROCESS = frozenset({"jpeg", "png", "webp", "gif"})
# ISO base media `ftyp` brands of still images (HEIF: ISO/IEC 23008-12; AVIF: AV1 image file format);
# any other `ftyp` file is a video (`frontend.serving.video_input.sniff_video`)
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"heif"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
GENERIC_IMAGE_BRANDS = frozenset({b"mif1", b"msf1", b"mif2", b"miaf"})
DNG_VERSION_TAG = 50706
BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)


def iso_image_brand(head: bytes) -> str | None:
    """ "heic" or "avif" when `head` starts an ISO media file whose `ftyp` box names a still image
    brand (major brand first, then the compatible ones), else None."""
    if head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, min(max(size, 16), len(head)) - 3, 4)]
    for brand in (major, *compatible):
        if brand in AVIF_BRANDS:
            return "avif"
        if brand in HEIF_BRANDS:
            return "heic"
    if major in GENERIC_IMAGE_BRANDS or any(b in GENERIC_IMAGE_BRANDS for b in compatible):
        return "heic"  # a HEIF still image of an unnamed codec: libheif tells
    return None


def _is_dng(data: bytes) -> bool:
    """Whether the TIFF's first IFD has a DNGVersion tag (a DNG is a TIFF that says so)."""
    order = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        for i in range(min(count, 4096)):
            (tag,) = struct.unpack_from(order + "H", data, offset + 2 + 12 * i)
            if tag == DNG_VERSION_TAG:
                return True
    except struct.error:
        return False
    return False


def sniff(data: bytes) -> str | None:
    """The format named by the leading bytes, or None when it is not one we accept."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"  # an MPO is a JPEG followed by more: its first picture is read
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "dng" if _is_dng(data) else "tiff"
    if (
        data[:2] == b"BM"
        and len(data) >= 26
        and int.from_bytes(data[14:18], "little") in (12, 40, 52, 56, 64, 108, 124)
    ):
        return "bmp"  # the info header's size names a BMP version
    if data.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "jp2"  # the JP2 container, or a bare JPEG 2000 codestream
    return iso_image_brand(data[:64])


_heif_registered = False


def _open(data: bytes, fmt: str) -> Image.Image:
    """A lazily opened Pillow image (header only), the HEIF plugin registered on the first HEIC."""
    global _heif_registered
    if fmt == "heic" and not _heif_registered:
        from pi_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True
    return Image.open(io.BytesIO(data))


def header_size(data: bytes, fmt: str = "") -> tuple[int, int]:
    """(width, height) from the header alone (Pillow opens lazily); for a TIFF, the pages' pixels
    added up as a width of their sum and a height of 1 when there are several."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open(data, fmt) as image:
                if fmt != "tiff":
                    return image.size
                pixels, pages = 0, getattr(image, "n_frames", 1)
                for page in range(pages):
                    image.seek(page)
                    pixels += image.size[0] * image.size[1]
                return image.size if pages == 1 else (pixels, 1)
    except Image.DecompressionBombError:
        raise InvalidImage("image dimensions are far too large") from None
    except Exception:
        raise InvalidImage("the file is not a readable image") from None


def _check_pixels(data: bytes, fmt: str, max_pixels: int) -> None:
    width, height = header_size(data, fmt)
    if width * height > max_pixels:
        stated = f"{width}x{height} pixels" if height > 1 or fmt != "tiff" else f"{width} pixels in its pages"
        raise InvalidImage(f"image is {stated}; the limit is {max_pixels} pixels")
    if width < 1 or height < 1:
        raise InvalidImage("the image has no pixels")


def _eight_bit(image: NDArray[Any]) -> NDArray[np.uint8]:
    if image.dtype == np.uint16:
        return np.asarray(image >> 8, dtype=np.uint8)  # Ultralytics' imread keeps the high byte
    if image.dtype != np.uint8:
        raise InvalidImage(f"unsupported sample type {image.dtype} (8 or 16 bits per sample)")
    return np.asarray(image, dtype=np.uint8)


def _opencv(data: bytes, fmt: str) -> NDArray[np.uint8]:
    buffer = np.frombuffer(data, np.uint8)
    decoded: NDArray[Any] | None = None
    if fmt == "tiff":
        success, pages = cv2.imdecodemulti(buffer, cv2.IMREAD_UNCHANGED)
        if success and pages and pages[0].ndim == 3:
            decoded = pages[0][..., :3]  # BGR as stored, alpha dropped
    if decoded is None:
        decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if decoded is None or decoded.size == 0:
        raise InvalidImage(f"the {fmt.upper()} file could not be decoded")
    bgr = _eight_bit(decoded)
    return np.ascontiguousarray(bgr if bgr.ndim == 3 else cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR))


def _pillow(data: bytes, fmt: str) -> NDArray[np.uint8]:
    try:
        with _open(data, fmt) as opened:
            if fmt == "gif":
                opened.seek(0)
                rgb = np.asarray(opened.convert("RGB"))
            else:
                with ImageOps.exif_transpose(opened) as upright:
                    rgb = np.asarray(upright.convert("RGB"))
    except InvalidImage:
        raise
    except Exception:
        if fmt == "gif":
            raise InvalidImage("the GIF could not be decoded") from None
        return _opencv(data, fmt)  # Ultralytics' fallback when Pillow cannot read it
    return np.ascontiguousarray(rgb[..., ::-1])


def decode_checked(data: bytes, fmt: str, max_pixels: int) -> NDArray[np.uint8]:
    """Header check, then decode, of a file already sniffed as `fmt` (in this process)."""
    _check_pixels(data, fmt, max_pixels)
    if fmt in ("gif", "heic", "avif"):
        return _pillow(data, fmt)
    return _opencv(data, fmt)


def decode_image(data: bytes, max_pixels: int) -> NDArray[np.uint8]:
    """Bytes of an uploaded file -> BGR uint8 `(h, w, 3)`, or `InvalidImage`."""
    if not data:
        raise InvalidImage("the file is empty")
    fmt = sniff(data)
    if fmt is None:
        raise InvalidImage(f"unsupported file type; send {ALLOWED}")
    if fmt in IN_PROCESS:
        return decode_checked(data, fmt, max_pixels)
    from frontend.serving.isolate import decode_isolated

    return decode_isolated(data, fmt, max_pixels)
