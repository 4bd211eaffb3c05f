"""The accuracy metrics the demo models are held to: perfect answers score 1, wrong ones are punished."""

from __future__ import annotations

import math

import numpy as np
import pytest

from demo.evaluate import Found, Score, add, from_api
from demo.generate import SHAPES, SIZES, Task, Thing, scene


def _perfect(task: Task, thing: Thing) -> Found:
    polygon = thing.polygon
    box = np.concatenate([polygon.min(0), polygon.max(0)])
    if task == "obb":
        from ultralytics.utils.ops import xyxyxyxy2xywhr

        xywhr = np.asarray(xyxyxyxy2xywhr(polygon.reshape(1, 8).astype(np.float32))[0], np.float64)
        return Found(thing.cls, 0.9, box, polygon, xywhr=xywhr)
    return Found(thing.cls, 0.9, box, polygon, thing.keypoints if task == "pose" else None)


def _score(task: Task, predict: object) -> float:
    score = Score(task)
    for index in range(12):
        _, truth = scene(task, "test", index)
        add(score, truth, predict(truth), (SIZES[task], SIZES[task]))  # type: ignore[operator]
    return score.value()


@pytest.mark.parametrize("task", ["detect", "segment", "obb", "pose", "classify"])
def test_the_ground_truth_itself_scores_one(task: Task) -> None:
    assert _score(task, lambda truth: [_perfect(task, t) for t in truth]) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("task", ["detect", "segment", "obb", "pose", "classify"])
def test_wrong_classes_score_nothing(task: Task) -> None:
    def wrong(truth: list[Thing]) -> list[Found]:
        found = [_perfect(task, t) for t in truth]
        for f in found:
            f.cls = 9
        return found

    assert _score(task, wrong) == 0.0


@pytest.mark.parametrize("task", ["detect", "segment", "obb", "pose"])
def test_missing_half_the_objects_costs_recall(task: Task) -> None:
    score = _score(task, lambda truth: [_perfect(task, t) for t in truth[::2]])
    assert 0.3 < score < 0.9


def test_shifted_keypoints_lose_oks() -> None:
    def shifted(truth: list[Thing]) -> list[Found]:
        found = [_perfect("pose", t) for t in truth]
        for f, t in zip(found, truth, strict=True):
            size = math.sqrt(np.prod(t.polygon.max(0) - t.polygon.min(0)))
            f.keypoints = t.keypoints + size  # every keypoint a whole object size away
        return found

    assert _score("pose", shifted) < 0.2


def test_a_mask_off_by_its_own_width_is_a_miss() -> None:
    def moved(truth: list[Thing]) -> list[Found]:
        found = [_perfect("segment", t) for t in truth]
        for f, t in zip(found, truth, strict=True):
            assert f.polygon is not None
            f.polygon = f.polygon + (t.polygon.max(0) - t.polygon.min(0))[0]
        return found

    assert _score("segment", moved) < 0.1


def test_classes_are_matched_by_name_not_by_ultralytics_folder_order() -> None:
    # Ultralytics numbers class folders alphabetically (star 2, triangle 3); SHAPES has them the other way
    alphabetical = sorted(SHAPES)

    def answer(truth: list[Thing]) -> list[Found]:
        name = SHAPES[truth[0].cls]
        return from_api(
            "classify", [{"class": name, "class_id": alphabetical.index(name), "confidence": 0.9}]
        )

    assert {SHAPES[scene("classify", "test", i)[1][0].cls] for i in range(12)} & {"star", "triangle"}
    assert _score("classify", answer) == 1.0
