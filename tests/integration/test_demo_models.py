"""The committed demo models, served through Triton: each meets its accuracy target on held-out
images through the REST API and loses nothing against `YOLO(weights).predict()`, and the examples
detector finds what the project labelled in bus.jpg and zidane.jpg (and nothing else)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ultralytics.utils import ASSETS

from demo.evaluate import THRESHOLDS, box_iou, evaluate, from_api
from demo.examples import LABELS, labelled
from demo.models import weights
from demo.report import VAL_CONF, VAL_IOU, in_process
from demo.train import RECIPES
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration
SAMPLE = 25  # held-out images per model here; `trident demo evaluate` scores all of them
# Every recipe, not just those whose weights exist: a missing demo model must fail, not skip.
COMMITTED = list(RECIPES.values())
SHAPES = [r.name for r in COMMITTED if r.name.startswith("shapes-")]


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
    root = tmp_path_factory.mktemp(name)

    def via_api(path: Path) -> list:  # type: ignore[type-arg]
        response = stack.predict(recipe.slug, path, conf=VAL_CONF, iou=VAL_IOU)
        assert response.status_code == 200, response.text
        return from_api(recipe.task, response.json()["predictions"])

    through_api = evaluate(recipe.task, root, via_api, SAMPLE)
    yolo = evaluate(recipe.task, root, in_process(recipe), SAMPLE)
    assert through_api >= THRESHOLDS[recipe.task]
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
