"""A stream's annotated preview: the latest processed frame with its results drawn (boxes with
class, confidence and track id, oriented boxes, mask outlines filled at 40 %, keypoints), as a
JPEG. The runner draws a frame only while someone watches (`GET /api/streams/{id}/preview`), once
per processed frame whoever many watch, on the shared CPU pool.

Colours are the Test tab's (Ultralytics' palette, `frontend/static/draw.js`): a track id's when
the stream tracks, else the class's.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.result import Result

# draw.js' PALETTE (RGB hex), here as BGR
_HEX = [
    *("042AFF", "0BDBEB", "F3F3F3", "00DFB7", "111F68", "FF6FDD", "FF444F", "CCED00", "00F344", "BD00FF"),
    *("00B4FF", "DD00BA", "00FFFF", "26C000", "01FFB3", "7D24FF", "7B0068", "FF1B6C", "FC6D2F", "A2FF0B"),
]
PALETTE = [(int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _HEX]
MAX_SIDE = 1280  # a bigger frame is scaled down before drawing: the preview is for eyes, not pixels
QUALITY = 80


def _colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def annotate(image: NDArray[np.uint8], result: Result) -> bytes:
    """`image` (BGR, the frame the model saw) with `result` drawn, as JPEG bytes."""
    scale = min(1.0, MAX_SIDE / max(image.shape[:2]))
    canvas: NDArray[np.uint8] = (
        image.copy() if scale == 1.0 else np.asarray(cv2.resize(image, None, fx=scale, fy=scale), np.uint8)
    )
    names = result.class_names()
    ids = result.track_id
    colours = [
        _colour(int(ids[i]) if ids is not None and ids[i] >= 0 else int(result.cls[i]))
        for i in range(len(result))
    ]
    thickness = max(round(sum(canvas.shape[:2]) / 2 * 0.003), 2)  # as Ultralytics draws
    if result.polygons:
        overlay = canvas.copy()
        for polygon, colour in zip(result.polygons, colours, strict=False):
            if len(polygon) >= 3:
                cv2.fillPoly(overlay, [np.round(polygon * scale).astype(np.int32)], colour)
        canvas = np.asarray(cv2.addWeighted(overlay, 0.4, canvas, 0.6, 0), dtype=np.uint8)
    corners = result.corners
    boxed = corners is not None or len(result.xyxy) == len(result)
    for i in range(len(result)):
        colour = colours[i]
        if not boxed:  # classification: the top classes, listed
            x1, y1 = 0, 22 * (i + 1)
        elif corners is not None:
            points = np.round(corners[i].reshape(-1, 2) * scale).astype(np.int32)
            cv2.polylines(canvas, [points], True, colour, thickness)
            x1, y1 = points.min(axis=0)
        else:
            x1, y1, x2, y2 = np.rint(result.xyxy[i] * scale).astype(int).tolist()
            if x2 > x1 or y2 > y1:
                cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        label = f"{names[i]} {float(result.conf[i]):.2f}"
        if ids is not None and ids[i] >= 0:
            label = f"id:{int(ids[i])} {label}"
        _label(canvas, label, int(x1), int(y1), colour)
    if result.keypoints is not None:
        for person, colour in zip(result.keypoints, colours, strict=False):
            for point in person:
                visible = len(point) < 3 or point[2] >= 0.5
                if visible and point[0] > 0 and point[1] > 0:
                    x, y = np.rint(point[:2] * scale).astype(int).tolist()
                    centre = (x, y)
                    cv2.circle(canvas, centre, thickness + 2, colour, -1)
    ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    assert ok
    return bytes(jpeg)


def _label(canvas: NDArray[np.uint8], text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    (w, h), base = cv2.getTextSize(text, font, size, 1)
    top = max(y - h - base - 2, 0)
    cv2.rectangle(canvas, (x, top), (x + w + 4, top + h + base + 2), colour, -1)
    ink = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)
    cv2.putText(canvas, text, (x + 2, top + h + 1), font, size, ink, 1, cv2.LINE_AA)
