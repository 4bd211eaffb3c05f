"""The demo data generator: reproducible, exact labels, and a test split that training never sees."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from demo.generate import SIZES, TASKS, Task, label_lines, scene, write_dataset


@pytest.mark.parametrize("task", TASKS)
def test_a_scene_is_the_same_every_time_it_is_drawn(task: Task) -> None:
    first, things = scene(task, "train", 7)
    again, things_again = scene(task, "train", 7)
    assert np.array_equal(first, again)
    assert [t.cls for t in things] == [t.cls for t in things_again]


@pytest.mark.parametrize("task", TASKS)
def test_the_test_split_is_drawn_from_other_seeds_than_training(task: Task) -> None:
    train = {scene(task, "train", i)[0].tobytes() for i in range(20)}
    test = {scene(task, "test", i)[0].tobytes() for i in range(20)}
    assert not train & test


@pytest.mark.parametrize("task", ["detect", "segment", "obb", "pose"])
def test_each_labelled_outline_covers_pixels_that_differ_from_the_background(task: Task) -> None:
    """The labels describe what is drawn: inside every outline the image is one flat colour (plus noise)."""
    for index in range(10):
        image, things = scene(task, "val", index)
        assert things, "every scene has at least one object"
        for thing in things:
            mask = np.zeros(image.shape[:2], np.uint8)
            cv2.fillPoly(mask, [np.round(thing.polygon).astype(np.int32)], 1)
            inner = cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)
            if inner.sum() < 20:
                continue
            assert image[inner].std(0).max() < 25, "a labelled shape should be one colour inside"
            assert (thing.polygon >= -0.5).all() and (thing.polygon <= SIZES[task] + 0.5).all()


def test_pose_keypoints_are_the_apex_then_the_base_corners_clockwise() -> None:
    _, things = scene("pose", "train", 3)
    for thing in things:
        apex, right, left = thing.keypoints
        base = (right + left) / 2
        assert np.linalg.norm(apex - base) > 1.5 * np.linalg.norm(right - left)  # the narrow end is the apex
        (ax, ay), (bx, by) = right - apex, left - apex
        assert ax * by - ay * bx > 0  # clockwise on screen (y points down)


def test_label_lines_are_normalised_ultralytics_rows() -> None:
    _, things = scene("pose", "train", 0)
    for line in label_lines("pose", things, SIZES["pose"]):
        values = [float(v) for v in line.split()]
        assert len(values) == 1 + 4 + 3 * 3
        assert all(0 <= v <= 1 for v in values[1:5])


def test_write_dataset_writes_every_split_once(tmp_path: Path) -> None:
    data = write_dataset("detect", tmp_path)
    config = yaml.safe_load(data.read_text())
    assert config["names"] == {0: "circle", 1: "square", 2: "triangle", 3: "star"}
    counts = {
        s: len(list((tmp_path / "detect" / s / "images").glob("*.jpg"))) for s in ("train", "val", "test")
    }
    assert counts == {"train": 800, "val": 100, "test": 200}
    stamp = (tmp_path / "detect" / "train" / "images" / "00000.jpg").stat().st_mtime_ns
    write_dataset("detect", tmp_path)
    assert (tmp_path / "detect" / "train" / "images" / "00000.jpg").stat().st_mtime_ns == stamp
