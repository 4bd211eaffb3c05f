"""The dense maps of semantic and depth answers: PNG images in base64, as the Platform returns them.

Both formats carry the same objects (`semantic_mask`, `depth`), next to `predictions` (seed) or
`results` (Platform), at the original image's size (as Ultralytics' `Results` holds them):

- `semantic_mask`: `{"shape": [h, w], "encoding": "png", "data"}`, an 8-bit grayscale PNG whose
  pixel is the class id.
- `depth`: `{"shape", "encoding": "png", "data", "min", "max", "bits"}`: a grayscale PNG of `bits`
  precision, uint8 for 8 and uint16 for 12 and 16 (12-bit values go up to 4095). A pixel `p` is
  `p * max / (2**bits - 1)` metres; 0 means no depth (a non-finite or non-positive value). A valid
  depth is never encoded as 0 (it is at least 1), so it is within one step, `max / (2**bits - 1)`,
  of the model's value (half a step above the first). `min` and `max` are the smallest and largest
  valid depths, exactly (float32 values).

Everything runs in bands of rows: a 12 MP depth map costs its uint16 image and a few MB more.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.result import Result

Bits = Literal[8, 12, 16]
BAND_ROWS = 256
PNG_COMPRESSION = 1  # zlib level: the fastest; a 12 MP depth PNG takes ~0.3 s at 1, ~1 s at 6


def encode_png(image: NDArray[np.uint8] | NDArray[np.uint16]) -> str:
    """A grayscale PNG (8- or 16-bit, as the array's dtype) in base64."""
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ValueError("the map could not be encoded as PNG")
    return base64.b64encode(data.tobytes()).decode("ascii")


def semantic_mask_object(mask: NDArray[np.uint8]) -> dict[str, Any]:
    h, w = mask.shape
    return {"shape": [h, w], "encoding": "png", "data": encode_png(mask)}


def depth_range(depth: NDArray[np.float32]) -> tuple[float, float]:
    """The smallest and largest valid (finite, positive) depth; `(0, 0)` when there is none."""
    low, high = np.inf, -np.inf
    for start in range(0, depth.shape[0], BAND_ROWS):
        band = depth[start : start + BAND_ROWS]
        valid = band[np.isfinite(band) & (band > 0)]
        if valid.size:
            low, high = min(low, float(valid.min())), max(high, float(valid.max()))
    return (0.0, 0.0) if high < 0 else (low, high)


def quantise_depth(
    depth: NDArray[np.float32], high: float, bits: Bits
) -> NDArray[np.uint8] | NDArray[np.uint16]:
    """`round(depth * (2**bits - 1) / high)`, at least 1 for a valid depth, 0 for none."""
    top = (1 << bits) - 1
    out = np.zeros(depth.shape, dtype=np.uint8 if bits == 8 else np.uint16)
    if high <= 0:
        return out
    scale = np.float32(top / high)
    for start in range(0, depth.shape[0], BAND_ROWS):
        band = depth[start : start + BAND_ROWS]
        valid = np.isfinite(band) & (band > 0)
        scaled = np.where(valid, band, np.float32(0)) * scale
        np.rint(scaled, out=scaled)
        np.clip(scaled, 1, top, out=scaled)
        out[start : start + BAND_ROWS] = np.where(valid, scaled, 0)
    return out


def depth_object(depth: NDArray[np.float32], bits: Bits) -> dict[str, Any]:
    h, w = depth.shape
    low, high = depth_range(depth)
    return {
        "shape": [h, w],
        "encoding": "png",
        "data": encode_png(quantise_depth(depth, high, bits)),
        "min": low,
        "max": high,
        "bits": bits,
    }


def decode_depth_png(obj: dict[str, Any]) -> NDArray[np.float32]:
    """A `depth` object back to metres (what a client does): `pixel * max / (2**bits - 1)`."""
    pixels: NDArray[Any] = _decode_png(obj["data"])
    depth: NDArray[np.float32] = pixels.astype(np.float32) * np.float32(obj["max"] / ((1 << obj["bits"]) - 1))
    return depth


def _decode_png(data: str) -> NDArray[Any]:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a PNG")
    return np.asarray(image)


def decode_mask_png(obj: dict[str, Any]) -> NDArray[np.uint8]:
    """A `semantic_mask` object back to the class map."""
    return np.asarray(_decode_png(obj["data"]), dtype=np.uint8)


def map_objects(result: Result, bits: Bits) -> dict[str, dict[str, Any]]:
    """The map keys of one image's answer: `semantic_mask` or `depth`, or none for other tasks."""
    if result.semantic_mask is not None:
        return {"semantic_mask": semantic_mask_object(result.semantic_mask)}
    if result.depth is not None:
        return {"depth": depth_object(result.depth, bits)}
    return {}
