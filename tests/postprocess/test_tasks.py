"""Segmentation, pose, OBB and classification decoding agree with Ultralytics' own functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from ultralytics.data.augment import classify_transforms
from ultralytics.utils import ops
from ultralytics.utils.nms import non_max_suppression

from postprocess import masks
from postprocess.classify import classify_input, top_classes
from postprocess.masks import decode_masks
from postprocess.obb import OrientedBoxes, probiou, select_obb_rows
from postprocess.pose import decode_keypoints


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("input_hw", "orig_hw"),
    # 9x7: one image pixel is ~71 input pixels, and outlines still match Ultralytics' exactly (issue 18)
    [((640, 640), (1080, 810)), ((384, 640), (720, 1280)), ((640, 640), (9, 7)), ((640, 512), (9, 7))],
)
def test_masks_and_polygons_match_ultralytics(
    seed: int, input_hw: tuple[int, int], orig_hw: tuple[int, int]
) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    protos = rng.normal(0, 1, (32, input_hw[0] // 4, input_hw[1] // 4)).astype(np.float32)
    xy = rng.uniform(0, min(input_hw) - 60, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 300, (n, 2))], 1).astype(np.float32)
    rows = np.concatenate([boxes, rng.uniform(0, 1, (n, 2)), rng.normal(0, 0.5, (n, 32))], 1).astype(
        np.float32
    )
    rows[3, 6:] = 0  # logits all 0, nothing above the threshold: Ultralytics drops it
    masks = ops.process_mask(
        torch.from_numpy(protos),
        torch.from_numpy(rows[:, 6:]),
        torch.from_numpy(rows[:, :4]),
        input_hw,
        upsample=True,
    )
    expected_keep = (masks.amax((-2, -1)) > 0).numpy()
    segments = [
        ops.scale_coords(input_hw, s, orig_hw, normalize=False)
        for s in ops.masks2segments(masks[expected_keep])
    ]
    keep, polygons = decode_masks(rows, protos, input_hw, orig_hw)
    assert keep.tolist() == expected_keep.tolist()
    assert not keep[3]
    assert len(polygons) == len(segments)
    for ours, ref in zip(polygons, segments, strict=True):  # same pixels, so the very same outline
        np.testing.assert_allclose(ours, np.asarray(ref), atol=1e-3)


@pytest.mark.parametrize("budget", [masks.PAIR_BUDGET, 50])
def test_merged_outline_matches_ultralytics(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """Hundreds of contour sets: 2 to 40 contours of 1 to 40 points, coordinates from 0..2 (ties
    everywhere: the first minimum must be Ultralytics') to 0..299; with a small budget, pairs are
    compared in several batches and large pairs in blocks."""
    from ultralytics.data.converter import merge_multi_segment as ul_merge

    monkeypatch.setattr(masks, "PAIR_BUDGET", budget)
    rng = np.random.default_rng(3)
    for trial in range(600):
        high = int(rng.choice([3, 10, 300]))
        count = int(rng.integers(2, 40 if trial % 10 == 0 else 8))
        segments = [
            rng.integers(0, high, (int(rng.integers(1, 40)), 1, 2)).astype(np.int32) for _ in range(count)
        ]
        ours = masks.merged_outline([s.copy() for s in segments])
        ref = np.concatenate(ul_merge([s.reshape(-1, 2).copy() for s in segments]))
        assert ours.dtype == np.int32
        np.testing.assert_array_equal(ours, ref, err_msg=f"trial {trial}")


def test_keypoints_match_ultralytics_scale_coords() -> None:
    rng = np.random.default_rng(0)
    rows = np.concatenate(
        [rng.uniform(0, 600, (10, 4)), rng.uniform(0, 1, (10, 2)), rng.uniform(-10, 650, (10, 51))], 1
    ).astype(np.float32)
    _, kpts = decode_keypoints(rows, (17, 3), (640, 640), (1080, 810))
    ref = ops.scale_coords((640, 640), torch.from_numpy(rows[:, 6:].reshape(10, 17, 3).copy()), (1080, 810))
    np.testing.assert_array_equal(kpts, ref.numpy())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iou", [0.3, 0.7])
def test_obb_fast_nms_matches_ultralytics(seed: int, iou: float) -> None:
    rng = np.random.default_rng(seed)
    nc, anchors = 15, 2000
    pred = np.concatenate(
        [
            rng.uniform(0, 640, (2, anchors)),
            rng.uniform(5, 150, (2, anchors)),
            rng.beta(0.3, 3, (nc, anchors)),
            rng.uniform(-1, 3, (1, anchors)),
        ]
    ).astype(np.float32)
    expected = non_max_suppression(torch.from_numpy(pred[None]), 0.25, iou, nc=nc, rotated=True)[0].numpy()
    ours = select_obb_rows(pred, nc=nc, end2end=False, conf=0.25, iou=iou)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


def test_probiou_matches_ultralytics() -> None:
    from ultralytics.utils.metrics import batch_probiou

    rng = np.random.default_rng(1)
    boxes = np.concatenate(
        [rng.uniform(0, 100, (30, 2)), rng.uniform(1, 60, (30, 2)), rng.uniform(-3, 3, (30, 1))], 1
    ).astype(np.float32)
    ours, ref = probiou(boxes), batch_probiou(boxes, boxes).numpy()
    off = ~np.eye(30, dtype=bool)  # self-overlap sits where sqrt(1 - exp(-eps)) amplifies rounding
    np.testing.assert_allclose(ours[off], ref[off], atol=1e-6)
    np.testing.assert_allclose(np.diag(ours), np.diag(ref), atol=1e-3)


def test_obb_corners_match_ultralytics() -> None:
    rng = np.random.default_rng(2)
    xywhr = np.concatenate(
        [rng.uniform(0, 500, (20, 2)), rng.uniform(1, 80, (20, 2)), rng.uniform(-4, 4, (20, 1))], 1
    ).astype(np.float32)
    obb = OrientedBoxes(xywhr, np.ones(20, np.float32), np.zeros(20, np.int64))
    np.testing.assert_allclose(obb.corners(), ops.xywhr2xyxyxyxy(torch.from_numpy(xywhr)).numpy(), atol=1e-4)


@pytest.mark.parametrize(("h", "w"), [(1080, 810), (720, 1280), (224, 224), (37, 1001), (100, 50)])
@pytest.mark.parametrize("size", [224, 640])
def test_classify_input_matches_ultralytics_transforms(h: int, w: int, size: int) -> None:
    image = np.random.default_rng(h + w).integers(0, 256, (h, w, 3), dtype=np.uint8)  # BGR
    transforms = classify_transforms(size)
    host = transforms.transforms[:2]  # Resize + CenterCrop on the BGR array, as the predictor does
    cropped = image
    pil = Image.fromarray(cropped)
    for t in host:
        pil = t(pil)
    expected = np.asarray(pil)[..., ::-1].transpose(2, 0, 1).astype(np.float32)[None] / 255
    np.testing.assert_array_equal(classify_input(image, (size, size)), expected)


def test_top_classes_are_sorted_and_five() -> None:
    probs = np.array([0.05, 0.4, 0.1, 0.2, 0.15, 0.03, 0.07], dtype=np.float32)
    idx, conf = top_classes(probs)
    assert idx.tolist() == [1, 3, 4, 2, 6]
    np.testing.assert_allclose(conf, [0.4, 0.2, 0.15, 0.1, 0.07])
