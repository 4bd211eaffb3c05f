"""The seed rendering: the reference page's `{"success", "predictions", "image"}` answer.

Numbers are rounded as Ultralytics' `Results.summary()` rounds them: `round(x, decimals)` bit for
bit (vectorised: 300 boxes are 1,500 numbers), outlines with NumPy's rounding. `normalize`
divides coordinates by the image's width and height first, as `summary(normalize=True)` does.
Semantic predictions are one `{"class", "class_id", "pixel_ratio"}` per class present; depth has
none. Their maps (`semantic_mask`, `depth`, `pipeline.render_maps`) sit next to `predictions`.
A tracked video frame's rows carry `track_id`; no other answer has the key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.contract import PredictOptions
from pipeline.result import Result, Speed
from postprocess.maps import pixel_ratios
from postprocess.rounding import round_like_python

OBB_KEYS = ("cx", "cy", "w", "h", "angle")
CORNER_KEYS = ("x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4")
KEYPOINT_KEYS = ("x", "y", "conf")


def xy_scale(result: Result, normalize: bool) -> tuple[int, int]:
    """(w, h) to divide x and y by: the image's size when normalising, else 1."""
    h, w = result.orig_hw if normalize else (1, 1)
    return w, h


def rounded(array: NDArray[Any], decimals: int) -> list[Any]:
    """`array` as nested lists of `round(float(x), decimals)`."""
    values: list[Any] = round_like_python(array, decimals).tolist()
    return values


def add_track_ids(rows: list[dict[str, Any]], result: Result) -> None:
    """Each row's `track_id`, after its box, on a tracked frame only (as `Results.summary()`)."""
    if result.track_id is not None:
        for row, track_id in zip(rows, result.track_id.tolist(), strict=True):
            row["track_id"] = track_id


def _bases(result: Result, decimals: int) -> list[dict[str, Any]]:
    return [
        {"class": name, "class_id": c, "confidence": s}
        for name, c, s in zip(
            result.class_names(), result.cls.tolist(), rounded(result.conf, decimals), strict=True
        )
    ]


def seed_predictions(result: Result, options: PredictOptions) -> list[dict[str, Any]]:
    """The `predictions` list of one image."""
    d = options.decimals
    if result.semantic_mask is not None:
        names = result.names
        return [
            {"class": names[c], "class_id": c, "pixel_ratio": round(r, d)}
            for c, r in pixel_ratios(result.semantic_mask, names)
        ]
    if result.depth is not None:
        return []
    w, h = xy_scale(result, options.normalize)
    predictions = _bases(result, d)
    if result.task == "classify":
        return predictions
    if result.corners is not None and result.xywhr is not None:
        corners = rounded(result.corners.reshape(-1, 8).astype(np.float64) / ([w, h] * 4), d)
        xywhr = rounded(result.xywhr.reshape(-1, 5), d)
        for p, c, o in zip(predictions, corners, xywhr, strict=True):
            p["box"], p["obb"] = dict(zip(CORNER_KEYS, c, strict=True)), dict(zip(OBB_KEYS, o, strict=True))
        add_track_ids(predictions, result)
        return predictions
    boxes = rounded(result.xyxy.astype(np.float64) / (w, h, w, h), d)
    for p, (x1, y1, x2, y2) in zip(predictions, boxes, strict=True):
        p["box"] = {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
    add_track_ids(predictions, result)
    if result.polygons is not None:
        for p, poly in zip(predictions, result.polygons, strict=True):
            p["segments"] = np.round((poly / np.array([w, h], np.float32)).astype(np.float64), d).tolist()
    if result.keypoints is not None:
        kpts = result.keypoints.copy()
        kpts[..., :2] /= np.array([w, h], np.float32)
        keys = KEYPOINT_KEYS[: kpts.shape[-1]]  # visibility only when the model has it
        for p, person in zip(predictions, rounded(kpts, d), strict=True):
            p["keypoints"] = [dict(zip(keys, k, strict=True)) for k in person]
    return predictions


def seed_body(
    predictions: object, result: Result, speed: Speed, maps: dict[str, object] | None = None
) -> dict[str, Any]:
    """The whole answer; `predictions` may come pre-serialised (an `orjson.Fragment`), and so may
    `maps` (`semantic_mask` or `depth`, next to `predictions`)."""
    h, w = result.orig_hw
    return {
        "success": True,
        "predictions": predictions,
        **(maps or {}),
        "image": {"width": w, "height": h},
        "speed": speed.as_dict(),
    }
