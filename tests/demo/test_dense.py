"""The dense-map scenes: reproducible, labels that describe what is drawn, files Ultralytics reads back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from ultralytics.data.utils import load_depth

from demo import dense
from demo.dense import (
    CAMERA_HEIGHT,
    FOCAL,
    MAP_TASKS,
    MapTask,
    depth_scene,
    ground_depth,
    scene,
    semantic_scene,
)


@pytest.mark.parametrize("task", MAP_TASKS)
def test_a_scene_is_the_same_every_time_and_the_test_split_is_new(task: MapTask) -> None:
    image, label = scene(task, "train", 7)
    again, label_again = scene(task, "train", 7)
    assert np.array_equal(image, again) and np.array_equal(label, label_again)
    train = {scene(task, "train", i)[0].tobytes() for i in range(20)}
    assert not train & {scene(task, "test", i)[0].tobytes() for i in range(20)}


def test_each_class_region_is_one_painted_shape_on_a_background_of_zero() -> None:
    shapes_seen = set()
    for index in range(20):
        image, classes = semantic_scene("val", index)
        assert classes.shape == image.shape[:2] and set(np.unique(classes)) <= set(range(5))
        assert (classes == 0).mean() > 0.3, "most of a scene is background"
        count, regions = cv2.connectedComponents((classes > 0).astype(np.uint8))
        for region in range(1, count):
            inside = regions == region
            shapes_seen |= set(np.unique(classes[inside]))
            inner = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            if inner.sum() >= 20:
                assert image[inner].std(0).max() < 25, "a labelled shape is one colour inside"
    assert shapes_seen == {1, 2, 3, 4}


def test_the_ground_is_as_far_as_a_camera_1_6_m_above_it_sees_it() -> None:
    horizon = 20.0
    depth = ground_depth(horizon)
    for metres in (2.0, 5.0, 10.0):
        row = int(
            horizon + FOCAL * CAMERA_HEIGHT / metres
        )  # the row whose centre lies just below that distance
        assert depth[row, 0] == pytest.approx(metres, rel=0.15)
        assert (depth[row] == depth[row, 0]).all()
    assert (depth[: int(horizon)] == 0).all()
    assert (np.diff(depth[int(horizon) + 1 :, 0]) < 0).all(), "nearer towards the bottom"


def test_every_pixel_of_a_depth_scene_has_a_depth_and_near_shapes_look_bigger() -> None:
    for index in range(10):
        image, depth = depth_scene("val", index)
        assert depth.shape == image.shape[:2] and depth.dtype == np.float32
        assert (depth > 0.5).all() and (depth <= dense.MAX_DEPTH).all()
        assert depth.max() / depth.min() > 4, "a range of depths to learn"


@pytest.mark.parametrize("task", MAP_TASKS)
def test_ultralytics_reads_back_the_maps_that_were_drawn(
    task: MapTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dense, "MAP_SPLITS", {"train": (0, 3), "val": (1, 2), "test": (2, 2)})
    data = yaml.safe_load(dense.write_map_dataset(task, tmp_path).read_text())
    for split in ("train", "val"):
        images = sorted((tmp_path / task / split / "images").glob("*.jpg"))
        assert len(images) == dense.MAP_SPLITS[split][1]
        for index, path in enumerate(images):
            expected = scene(task, split, index)[1]
            assert np.asarray(cv2.imread(str(path))).shape[:2] == expected.shape
            if task == "depth":
                stored = load_depth(
                    str(path).replace("/images/", "/depth/").replace(".jpg", ".png"), data["depth_scale"]
                )
                np.testing.assert_allclose(stored, expected, atol=0.5 / data["depth_scale"])
            else:
                mask = cv2.imread(
                    str(path).replace("/images/", "/masks/").replace(".jpg", ".png"), cv2.IMREAD_UNCHANGED
                )
                assert np.array_equal(np.asarray(mask), expected)
    assert data["names"][0] == ("background" if task == "semantic" else "depth")
