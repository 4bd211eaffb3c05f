"""The Platform rendering: the current Platform contract's `{"images", "metadata"}` answer.

Each image's `results` are exactly what Ultralytics' `Results.summary(normalize, decimals)` gives
(the Platform's own serialiser): boxes and confidences with Python's `round`, outlines and
keypoints with NumPy's after a float32 division. The contract forbids any key it does not list.
Semantic results are one `{"name", "class", "pixel_ratio"}` per class present
(`Results.summary()`), and the image entry carries the class map (`semantic_mask`); depth
results are empty and the entry carries `depth` (see `pipeline.render_maps`). With `track`, a
tracked video frame's results carry `track_id` after `box`, as `summary()` of `model.track()`'s
results does, and the video's `metadata` its `tracks`; an ordinary answer keeps the exact shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.contract import PredictOptions
from pipeline.render_seed import CORNER_KEYS, add_track_ids, rounded, xy_scale
from pipeline.result import Result, Speed
from postprocess.maps import pixel_ratios


@dataclass(frozen=True)
class ModelInfo:
    """What `metadata` says of the model that answered."""

    slug: str
    task: str
    names: dict[int, str]
    version: dict[str, str]


def platform_results(result: Result, options: PredictOptions) -> list[dict[str, Any]]:
    d = options.decimals
    if result.semantic_mask is not None:
        return [
            {"name": result.names[c], "class": c, "pixel_ratio": round(r, d)}
            for c, r in pixel_ratios(result.semantic_mask, result.names)
        ]
    if result.depth is not None:
        return []
    w, h = xy_scale(result, options.normalize)
    rows = [
        {"name": name, "class": c, "confidence": s}
        for name, c, s in zip(result.class_names(), result.cls.tolist(), rounded(result.conf, d), strict=True)
    ]
    if result.task == "classify":
        return rows
    if result.corners is not None:
        corners = rounded(result.corners.reshape(-1, 8).astype(np.float64) / ([w, h] * 4), d)
        for row, values in zip(rows, corners, strict=True):
            row["box"] = dict(zip(CORNER_KEYS, values, strict=True))
    else:
        boxes = rounded(result.xyxy.astype(np.float64) / (w, h, w, h), d)
        for row, (x1, y1, x2, y2) in zip(rows, boxes, strict=True):
            row["box"] = {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
    add_track_ids(rows, result)
    scale = np.array([w, h], np.float32)
    if result.polygons is not None:
        for row, poly in zip(rows, result.polygons, strict=True):
            x, y = np.round((poly / scale).astype(np.float64).T, d).tolist() if len(poly) else ([], [])
            row["segments"] = {"x": x, "y": y}
    if result.keypoints is not None:
        kpts = result.keypoints.copy()
        kpts[..., :2] /= scale
        names = ("x", "y", "visible")[: kpts.shape[-1]]
        for row, person in zip(
            rows, np.round(kpts.astype(np.float64), d).transpose(0, 2, 1).tolist(), strict=True
        ):
            row["keypoints"] = dict(zip(names, person, strict=True))
    return rows


def platform_image(
    results: object, result: Result, speed: Speed, maps: dict[str, object] | None = None
) -> dict[str, Any]:
    """One `images` entry; `results` may come pre-serialised (an `orjson.Fragment`), and so may
    `maps` (`semantic_mask` or `depth`, only for those tasks: the contract forbids other keys)."""
    return {"shape": list(result.orig_hw), "speed": speed.as_dict(), "results": results, **(maps or {})}


def platform_body(
    images: list[dict[str, Any]], model: ModelInfo, alive_s: float, call_s: float
) -> dict[str, Any]:
    """The whole answer. `functionTimeAlive`: seconds this worker has been up; `functionTimeCall`:
    seconds this request took, as the Platform reports its serving function's."""
    return {
        "images": images,
        "metadata": {
            "imageCount": len(images),
            "functionTimeAlive": round(alive_s, 3),
            "functionTimeCall": round(call_s, 3),
            "model": model.slug,
            "task": model.task,
            "version": model.version,
            "classNames": [model.names.get(i, str(i)) for i in range(max(model.names, default=-1) + 1)],
        },
    }
