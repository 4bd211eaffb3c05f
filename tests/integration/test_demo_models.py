"""The committed demo models, served by `trident run` (what `make run` starts) from an empty
repository, which exports them: each meets its accuracy target on held-out images through the
REST API and loses nothing against `YOLO(weights).predict()`, the examples detector finds what
the project labelled in bus.jpg and zidane.jpg (and nothing else), and the curl `trident run`
prints works as pasted. One run serves every test here, so the demo models are exported once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import numpy as np
import pytest
from ultralytics.utils import ASSETS

from core.settings import Settings
from demo.dense import MAP_TASKS, MapTask
from demo.evaluate import THRESHOLDS, box_iou, evaluate, from_api
from demo.evaluate_maps import MAP_THRESHOLDS, Map, evaluate_map, from_api_map, meets
from demo.examples import LABELS, labelled
from demo.generate import Task
from demo.models import weights
from demo.report import VAL_CONF, VAL_IOU, in_process, in_process_map
from demo.train import RECIPES
from tests.helpers.stack import free_port, post_predict

pytestmark = pytest.mark.integration
SAMPLE = 25  # held-out images per model here; `trident demo evaluate` scores all of them
# Every recipe, not just those whose weights exist: a missing demo model must fail, not skip.
COMMITTED = list(RECIPES.values())
SHAPES = [r.name for r in COMMITTED if r.name.startswith("shapes-") and r.task not in MAP_TASKS]
MAPS = [r.name for r in COMMITTED if r.task in MAP_TASKS]
UNMETERED = '{"free": [10, 100], "pro": [1000000, 1000000]}'  # `trident run`'s dev key is on "pro"


@dataclass
class Run:
    process: subprocess.Popen[str]
    folder: Path  # its repository, data folder and logs: every process it starts mentions it
    curl: str  # the line it printed for the user to paste
    base_url: str
    key: str  # the dev key it created

    def predict(self, slug: str, image: Path, **params: object) -> httpx.Response:
        return post_predict(self.base_url, self.key, slug, image, **params)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """`trident run` on free ports with an empty repository, once it has printed its curl line
    (the demo models are exported and served by then)."""
    folder = tmp_path_factory.mktemp("run")
    port = free_port()
    env = {
        **os.environ,
        "TRIDENT_PORT": str(port),
        "TRIDENT_TRITON_GRPC_PORT": str(free_port()),
        "TRIDENT_TRITON_HTTP_PORT": str(free_port()),
        "TRIDENT_TRITON_METRICS_PORT": str(free_port()),
        "TRIDENT_MODEL_REPOSITORY": str(folder / "repo"),
        "TRIDENT_DATA_DIR": str(folder / "data"),
        "TRIDENT_TRITON_RUNTIME_DIR": str(Settings().runtime_dir),  # reuse the installed runtime
        "TRIDENT_PLANS": UNMETERED,  # the accuracy tests send hundreds of requests a minute
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "trident", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 420  # the first run exports every demo model
        curl = ""
        while time.monotonic() < deadline and not curl:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            curl = line.strip() if line.startswith("curl ") else ""
        key = (folder / "data" / "dev-api-key").read_text().strip() if curl else ""
        yield Run(process, folder, curl, f"http://127.0.0.1:{port}", key)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(60)


@pytest.fixture(scope="module")
def demo_models(run: Run) -> Run:
    missing = [str(weights(r)) for r in COMMITTED if not weights(r).is_file()]
    assert not missing, f"demo weights missing: {missing}"
    assert run.curl, "trident run printed no curl command"
    tiny = Path(__file__).parents[1] / "fixtures" / "tiny.png"
    deadline = time.monotonic() + 60
    for recipe in COMMITTED:  # each callable (Triton may still be loading the last ones)
        while (r := run.predict(recipe.slug, tiny)).status_code != 200:
            assert time.monotonic() < deadline, f"{recipe.slug}: {r.status_code} {r.text}"
            time.sleep(0.1)
    return run


@pytest.mark.parametrize("name", SHAPES)
def test_a_shapes_model_meets_its_target_through_the_api_and_matches_yolo(
    demo_models: Run, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    recipe = RECIPES[name]
    task = cast(Task, recipe.task)
    root = tmp_path_factory.mktemp(name)

    def via_api(path: Path) -> list:  # type: ignore[type-arg]
        response = demo_models.predict(recipe.slug, path, conf=VAL_CONF, iou=VAL_IOU)
        assert response.status_code == 200, response.text
        return from_api(task, response.json()["predictions"])

    through_api = evaluate(task, root, via_api, SAMPLE)
    yolo = evaluate(task, root, in_process(recipe), SAMPLE)
    assert through_api >= THRESHOLDS[task]
    assert abs(through_api - yolo) <= 0.005


@pytest.mark.parametrize("name", MAPS)
def test_a_dense_map_model_meets_its_target_through_the_api_and_matches_yolo(
    demo_models: Run, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """shapes-semantic: mIoU over the five classes (background included) >= 0.80; shapes-depth: AbsRel
    over every pixel <= 0.10, read from the API's 16-bit depth PNGs."""
    recipe = RECIPES[name]
    task = cast(MapTask, recipe.task)
    root = tmp_path_factory.mktemp(name)

    def via_api(path: Path) -> Map:
        response = demo_models.predict(recipe.slug, path, bits=16)
        assert response.status_code == 200, response.text
        return from_api_map(task, response.json())

    through_api = evaluate_map(task, root, via_api, SAMPLE).value()
    yolo = evaluate_map(task, root, in_process_map(recipe), SAMPLE).value()
    assert meets(task, through_api), f"{name}: {through_api:.4f} against {MAP_THRESHOLDS[task]}"
    assert abs(through_api - yolo) <= 0.005


@pytest.mark.parametrize("image", sorted(LABELS))
def test_the_examples_detector_finds_what_was_labelled_and_nothing_else(demo_models: Run, image: str) -> None:
    response = demo_models.predict("demo/examples/detect", ASSETS / image)  # the API's defaults: conf 0.25
    assert response.status_code == 200, response.text
    found = response.json()["predictions"]
    labels = labelled(image)
    assert sorted(p["class_id"] for p in found) == sorted(c for c, *_ in labels)
    boxes = np.array([[p["box"][k] for k in ("x1", "y1", "x2", "y2")] for p in found])
    for cls, *xyxy in labels:
        same = [j for j, p in enumerate(found) if p["class_id"] == cls]
        assert box_iou(np.array([xyxy]), boxes[same]).max() >= 0.7, (cls, xyxy)


def test_run_serves_the_demo_models_and_its_printed_curl_finds_the_bus(run: Run) -> None:
    """Last here: it ends the run with Ctrl-C, as a user would, and checks nothing outlives it."""
    try:
        assert run.curl, "trident run printed no curl command"
        assert "/api/models/demo/examples/detect/predict" in run.curl
        assert run.key.startswith("tri_") and run.key in run.curl

        out = subprocess.run(  # noqa: S602 - the point is to run the printed line as a user pastes it
            run.curl + " -w '\\n%{http_code}'", shell=True, capture_output=True, text=True, check=True
        ).stdout
        body, status = out.rsplit("\n", 1)
        assert status == "200", body
        response = json.loads(body)
        assert response["success"] is True
        assert response["image"] == {"width": 810, "height": 1080}
        assert {p["class"] for p in response["predictions"]} == {"person", "bus"}
    finally:
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGINT)  # Ctrl-C in the terminal
        assert run.process.wait(60) == 0
    leftovers = subprocess.run(["pgrep", "-f", str(run.folder)], capture_output=True, text=True, check=False)
    assert leftovers.stdout == "", "Triton or the frontend outlived `trident run`"
