"""The committed demo models, served through Triton: each meets its accuracy target on held-out
images through the REST API and loses nothing against `YOLO(weights).predict()`, and the examples
detector finds what the project labelled in bus.jpg and zidane.jpg (and nothing else)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pytest
from ultralytics.utils import ASSETS

from demo.dense import MAP_TASKS, MapTask
from demo.evaluate import THRESHOLDS, box_iou, evaluate, from_api
from demo.evaluate_maps import MAP_THRESHOLDS, Map, evaluate_map, from_api_map, meets
from demo.examples import LABELS, labelled
from demo.generate import Task
from demo.models import weights
from demo.report import VAL_CONF, VAL_IOU, in_process, in_process_map
from demo.train import RECIPES
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration
SAMPLE = 25  # held-out images per model here; `trident demo evaluate` scores all of them
# Every recipe, not just those whose weights exist: a missing demo model must fail, not skip.
COMMITTED = list(RECIPES.values())
SHAPES = [r.name for r in COMMITTED if r.name.startswith("shapes-") and r.task not in MAP_TASKS]
MAPS = [r.name for r in COMMITTED if r.task in MAP_TASKS]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_has_its_weights_committed(name: str) -> None:
    """`make run` serves every recipe; weights that went missing would otherwise go unnoticed."""
    assert weights(RECIPES[name]).is_file(), (
        f"{weights(RECIPES[name])} is missing (`trident demo train {name}`)"
    )


@pytest.fixture(scope="module")
def demo_models(stack: Stack) -> None:
    """Export the committed demo models the way `trident demo export` does (public, their image size)."""
    missing = [str(weights(r)) for r in COMMITTED if not weights(r).is_file()]
    assert not missing, f"demo weights missing: {missing}"
    for recipe in COMMITTED:
        stack.export(weights(recipe), recipe.slug, imgsz=recipe.imgsz)
    for recipe in COMMITTED:
        stack.wait_model(recipe.slug)


@pytest.mark.parametrize("name", SHAPES)
def test_a_shapes_model_meets_its_target_through_the_api_and_matches_yolo(
    stack: Stack, demo_models: None, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    recipe = RECIPES[name]
    task = cast(Task, recipe.task)
    root = tmp_path_factory.mktemp(name)

    def via_api(path: Path) -> list:  # type: ignore[type-arg]
        response = stack.predict(recipe.slug, path, conf=VAL_CONF, iou=VAL_IOU)
        assert response.status_code == 200, response.text
        return from_api(task, response.json()["predictions"])

    through_api = evaluate(task, root, via_api, SAMPLE)
    yolo = evaluate(task, root, in_process(recipe), SAMPLE)
    assert through_api >= THRESHOLDS[task]
    assert abs(through_api - yolo) <= 0.005


@pytest.mark.parametrize("name", MAPS)
def test_a_dense_map_model_meets_its_target_through_the_api_and_matches_yolo(
    stack: Stack, demo_models: None, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """shapes-semantic: mIoU over the five classes (background included) >= 0.80; shapes-depth: AbsRel
    over every pixel <= 0.10, read from the API's 16-bit depth PNGs."""
    recipe = RECIPES[name]
    task = cast(MapTask, recipe.task)
    root = tmp_path_factory.mktemp(name)

    def via_api(path: Path) -> Map:
        response = stack.predict(recipe.slug, path, bits=16)
        assert response.status_code == 200, response.text
        return from_api_map(task, response.json())

    through_api = evaluate_map(task, root, via_api, SAMPLE).value()
    yolo = evaluate_map(task, root, in_process_map(recipe), SAMPLE).value()
    assert meets(task, through_api), f"{name}: {through_api:.4f} against {MAP_THRESHOLDS[task]}"
    assert abs(through_api - yolo) <= 0.005


@pytest.mark.parametrize("image", sorted(LABELS))
def test_the_examples_detector_finds_what_was_labelled_and_nothing_else(
    stack: Stack, demo_models: None, image: str
) -> None:
    response = stack.predict("demo/examples/detect", ASSETS / image)  # the API's defaults: conf 0.25
    assert response.status_code == 200, response.text
    found = response.json()["predictions"]
    labels = labelled(image)
    assert sorted(p["class_id"] for p in found) == sorted(c for c, *_ in labels)
    boxes = np.array([[p["box"][k] for k in ("x1", "y1", "x2", "y2")] for p in found])
    for cls, *xyxy in labels:
        same = [j for j, p in enumerate(found) if p["class_id"] == cls]
        assert box_iou(np.array([xyxy]), boxes[same]).max() >= 0.7, (cls, xyxy)
