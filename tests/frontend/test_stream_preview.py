"""A stream's preview frame (`frontend.streams.preview.annotate`): boxes in a track id's colour,
mask polygons filled, keypoints, labels; a JPEG of the frame's size (big frames scaled down)."""

from __future__ import annotations

import cv2
import numpy as np

from frontend.streams.preview import PALETTE, annotate
from pipeline.result import Result


def decoded(jpeg: bytes) -> np.ndarray:  # type: ignore[type-arg]
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def near(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> bool:  # type: ignore[type-arg]
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tolerance))


def test_boxes_ids_masks_and_keypoints_are_drawn() -> None:
    image = np.full((240, 320, 3), 128, np.uint8)
    square = np.array([[200, 150], [260, 150], [260, 210], [200, 210]], np.float32)
    result = Result(
        task="pose",
        names={0: "person", 1: "dog"},
        orig_hw=(240, 320),
        cls=np.array([0, 1]),
        conf=np.array([0.9, 0.8], np.float32),
        xyxy=np.array([[20, 40, 120, 200], [200, 150, 260, 210]], np.float32),
        polygons=[square * 0, square],
        keypoints=np.array([[[70, 100, 0.9], [5, 5, 0.1]], [[230, 180, 0.9], [0, 0, 0.9]]], np.float32),
        track_id=np.array([7, 3]),
    )
    drawn = decoded(annotate(image, result))
    assert drawn.shape == image.shape
    assert near(drawn[120, 20], PALETTE[7], 60)  # the left edge of box 1, in track id 7's colour
    assert near(drawn[180, 200], PALETTE[3], 60)
    inside = drawn[200, 240].astype(int)  # the polygon, filled at 40 % over grey
    assert near(drawn[200, 240], tuple(int(0.4 * c + 0.6 * 128) for c in PALETTE[3]), 20), inside
    assert near(drawn[100, 70], PALETTE[7])  # a keypoint
    assert near(drawn[5, 5], (128, 128, 128))  # a keypoint below 0.5 is not drawn
    label = drawn[25:40, 22:100]  # "id:7 person 0.90" above the box, on its colour
    assert (np.abs(label.astype(int) - np.array(PALETTE[7])).sum(axis=2) < 60).mean() > 0.4


def test_a_big_frame_is_scaled_down_and_nothing_found_is_the_frame() -> None:
    empty = Result(
        task="detect", names={}, orig_hw=(2000, 3000), cls=np.zeros(0, np.int64), conf=np.zeros(0, np.float32)
    )
    drawn = decoded(annotate(np.zeros((2000, 3000, 3), np.uint8), empty))
    assert drawn.shape == (853, 1280, 3)
