"""The only module that decodes images: sniff the format, check the size, decode to BGR.

JPEG, PNG and WebP are decoded with `cv2.imdecode(..., IMREAD_COLOR)` exactly as Ultralytics reads
files (EXIF orientation applied, 16-bit reduced to 8-bit), so the pixels match `YOLO.predict()`.
GIF (which OpenCV does not read) goes through Pillow: first frame, RGB, then BGR. The dimensions
are read from the header before anything is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from frontend.errors import InvalidImage

ALLOWED = "JPEG, PNG, WebP or GIF"


def sniff(data: bytes) -> str | None:
    """The format named by the leading bytes, or None when it is not one we accept."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header alone (Pillow opens lazily)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError:
        raise InvalidImage("image dimensions are far too large") from None
    except Exception:
        raise InvalidImage("the file is not a readable image") from None


def decode_image(data: bytes, max_pixels: int) -> NDArray[np.uint8]:
    """Bytes of an uploaded file -> BGR uint8 `(h, w, 3)`, or `InvalidImage`."""
    if not data:
        raise InvalidImage("the file is empty")
    fmt = sniff(data)
    if fmt is None:
        raise InvalidImage(f"unsupported file type; send {ALLOWED}")
    width, height = header_size(data)
    if width * height > max_pixels:
        raise InvalidImage(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
    if fmt == "gif":
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.seek(0)
                rgb = np.asarray(image.convert("RGB"))
        except Exception:
            raise InvalidImage("the GIF could not be decoded") from None
        return np.ascontiguousarray(rgb[..., ::-1])
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None or decoded.size == 0:
        raise InvalidImage(f"the {fmt.upper()} file could not be decoded")
    return np.asarray(decoded, dtype=np.uint8)
