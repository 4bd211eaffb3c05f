"""NMS and box decoding must keep exactly the boxes Ultralytics keeps, in the same order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from ultralytics.utils.nms import non_max_suppression

from postprocess.detect import decode_detections
from postprocess.nms import class_aware_nms, end2end_rows, nms, raw_candidates


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 600, (n, 2))
    wh = rng.uniform(2, 120, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("iou", [0.3, 0.45, 0.7])
def test_nms_matches_torchvision(seed: int, iou: float) -> None:
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 500)
    scores = rng.uniform(0, 1, 500).astype(np.float32)
    expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
    assert np.array_equal(nms(boxes, scores, iou, max_det=10_000), expected)


@pytest.mark.parametrize("n", [1, 255, 256, 257, 3000])
def test_blockwise_nms_matches_torchvision_across_blocks(n: int) -> None:
    """Crowded boxes (many suppressions inside and across the 256-candidate blocks), ties included."""
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 200, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 80, (n, 2))], 1).astype(np.float32)
    scores = np.round(rng.uniform(0, 1, n), 2).astype(np.float32)  # ties: order must stay stable
    expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.45).numpy()
    assert np.array_equal(nms(boxes, scores, 0.45, max_det=100_000), expected)
    assert np.array_equal(nms(boxes, scores, 0.45, max_det=7), expected[:7])


def test_nms_stops_at_max_det_with_the_same_first_boxes() -> None:
    rng = np.random.default_rng(1)
    boxes, scores = random_boxes(rng, 400), rng.uniform(0, 1, 400).astype(np.float32)
    full = nms(boxes, scores, 0.5, max_det=10_000)
    assert np.array_equal(nms(boxes, scores, 0.5, max_det=25), full[:25])


def raw_prediction(rng: np.random.Generator, nc: int, anchors: int) -> np.ndarray:
    cxcy = rng.uniform(0, 640, (2, anchors))
    wh = rng.uniform(4, 200, (2, anchors))
    scores = rng.beta(0.3, 3.0, (nc, anchors))
    return np.concatenate([cxcy, wh, scores]).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("conf", "iou"), [(0.001, 0.45), (0.25, 0.7), (0.5, 0.3)])
def test_raw_head_decoding_matches_ultralytics(seed: int, conf: float, iou: float) -> None:
    rng = np.random.default_rng(seed)
    pred = raw_prediction(rng, nc=80, anchors=8400)
    expected = non_max_suppression(torch.from_numpy(pred[None]), conf, iou, max_det=300)[0].numpy()
    ours = class_aware_nms(raw_candidates(pred, nc=80, conf=conf), iou, max_det=300)
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


def test_end2end_rows_keep_order_and_drop_padding() -> None:
    rows = np.zeros((300, 6), dtype=np.float32)
    rows[:3] = [[1, 2, 3, 4, 0.9, 5], [1, 2, 3, 4, 0.8, 0], [5, 6, 7, 8, 0.1, 2]]
    kept = end2end_rows(rows, conf=0.25, max_det=300)
    expected = non_max_suppression(torch.from_numpy(rows[None]), 0.25, 0.7, end2end=True)[0].numpy()
    np.testing.assert_array_equal(kept, expected)
    assert len(kept) == 2


def test_decoded_boxes_are_in_original_pixels_and_clipped() -> None:
    # one box covering the whole 640x640 input of a 1080x810 (h x w) image letterboxed with 80 px side pads
    pred = np.zeros((84, 1), dtype=np.float32)
    pred[:4, 0] = [320, 320, 640, 640]
    pred[4 + 5, 0] = 0.9
    det = decode_detections(
        pred, nc=80, end2end=False, conf=0.25, iou=0.45, input_hw=(640, 640), orig_hw=(1080, 810)
    )
    np.testing.assert_allclose(det.xyxy, [[0, 0, 810, 1080]])
    assert det.cls.tolist() == [5]
