"""mIoU and AbsRel as the dense-map demo models are held to them: the truth scores perfectly, errors cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from demo.dense import scene
from demo.evaluate_maps import MapScore, evaluate_map, from_api_map, meets
from pipeline.render_maps import depth_object, semantic_mask_object


def _score(task: str, predict: object, count: int = 8) -> MapScore:
    score = MapScore(task)  # type: ignore[arg-type]
    for index in range(count):
        truth = scene(task, "test", index)[1]  # type: ignore[arg-type]
        score.add(truth, predict(truth))  # type: ignore[operator]
    return score


def test_the_true_class_map_scores_one_and_background_counts() -> None:
    score = _score("semantic", lambda truth: truth)
    assert score.value() == 1.0 and meets("semantic", score.value())
    assert set(score.per_class()) == {"background", "circle", "square", "triangle", "star"}


def test_painting_everything_background_scores_the_background_share_over_five() -> None:
    score = _score("semantic", np.zeros_like)
    background = score.per_class()["background"]
    assert 0.5 < background < 1 and score.value() == pytest.approx(background / 5)
    assert not meets("semantic", score.value())


def test_a_swapped_class_costs_both_classes() -> None:
    score = _score("semantic", lambda truth: np.where(truth == 1, 2, truth).astype(np.uint8))
    assert score.per_class()["circle"] == 0.0 and score.per_class()["square"] < 1.0
    assert score.value() < 0.8


def test_absrel_is_the_relative_error_and_no_depth_is_wrong() -> None:
    assert _score("depth", lambda truth: truth).value() == 0.0
    assert _score("depth", lambda truth: truth * 1.1).value() == pytest.approx(0.1, rel=1e-4)
    assert _score("depth", lambda truth: truth * 0.8).value() == pytest.approx(0.2, rel=1e-4)
    assert _score("depth", np.zeros_like).value() == pytest.approx(1.0)
    assert meets("depth", 0.1) and not meets("depth", 0.11)


def test_a_map_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        _score("depth", lambda truth: truth[1:])


@pytest.mark.parametrize("task", ["semantic", "depth"])
def test_the_api_png_of_the_truth_scores_as_the_truth(task: str, tmp_path: Path) -> None:
    """What `trident demo evaluate` decodes from the API: class maps exactly, 16-bit depth within a step."""

    def via_png(path: Path) -> np.ndarray:
        index = int(path.stem)
        truth = scene(task, "test", index)[1]  # type: ignore[arg-type]
        if task == "semantic":
            return from_api_map("semantic", {"semantic_mask": semantic_mask_object(truth)})  # type: ignore[arg-type]
        return from_api_map("depth", {"depth": depth_object(truth, 16)})  # type: ignore[arg-type]

    score = evaluate_map(task, tmp_path, via_png, limit=5)  # type: ignore[arg-type]
    assert score.value() == (1.0 if task == "semantic" else pytest.approx(0.0, abs=1e-4))
    assert len(list((tmp_path / task / "test" / "images").glob("*.jpg"))) == 5
