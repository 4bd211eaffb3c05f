"""`trident demo evaluate`: the accuracy table of the demo models, REST API beside `YOLO().predict()`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from demo.dense import MAP_TASKS, MapTask
from demo.evaluate import METRIC, THRESHOLDS, Found, box_iou, evaluate, from_api, from_result
from demo.evaluate_maps import (
    MAP_METRIC,
    MAP_THRESHOLDS,
    Map,
    evaluate_map,
    from_api_map,
    from_result_map,
    meets,
)
from demo.examples import LABELS, labelled
from demo.generate import Task
from demo.models import available, weights
from demo.train import Recipe

VAL_CONF, VAL_IOU = 0.001, 0.7  # Ultralytics' validation settings, so mAP sees the whole PR curve


class Api:
    """Trident's predict endpoint; waits out 429s so any key works, however slowly."""

    def __init__(self, base: str, key: str) -> None:
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def answer(self, slug: str, image: Path, data: dict[str, str]) -> dict[str, Any]:
        """The seed-format JSON answer."""
        while True:
            response = self.client.post(
                f"/api/models/{slug}/predict",
                files={"file": (image.name, image.read_bytes(), "image/jpeg")},
                data=data,
            )
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def predict(self, slug: str, image: Path, conf: float, iou: float) -> list[dict[str, Any]]:
        predictions: list[dict[str, Any]] = self.answer(slug, image, {"conf": str(conf), "iou": str(iou)})[
            "predictions"
        ]
        return predictions


def in_process(recipe: Recipe) -> Callable[[Path], list[Found]]:
    """`YOLO(weights).predict()` with the same settings the API is called with."""
    from ultralytics import YOLO  # type: ignore[attr-defined, unused-ignore]

    model = YOLO(str(weights(recipe)))

    def predict(path: Path) -> list[Found]:
        results: list[Any] = list(
            model.predict(str(path), conf=VAL_CONF, iou=VAL_IOU, imgsz=recipe.imgsz, verbose=False)
        )
        return from_result(cast(Task, recipe.task), results[0])

    return predict


def in_process_map(recipe: Recipe) -> Callable[[Path], Map]:
    """`YOLO(weights).predict()`'s map at the recipe's image size."""
    from ultralytics import YOLO  # type: ignore[attr-defined, unused-ignore]

    model = YOLO(str(weights(recipe)))
    task = cast(MapTask, recipe.task)

    def predict(path: Path) -> Map:
        results: list[Any] = list(model.predict(str(path), imgsz=recipe.imgsz, verbose=False))
        return from_result_map(task, results[0])

    return predict


def maps_table(api: Api, recipes: list[Recipe], limit: int | None, root: Path) -> Table:
    """mIoU and AbsRel of the dense-map models: the REST API (depth as 16-bit PNGs) beside in process."""
    table = Table(
        "model", "slug", "metric", "REST API", "YOLO().predict()", "|diff|", "target", title="held-out scenes"
    )
    for recipe in recipes:
        task = cast(MapTask, recipe.task)
        slug = recipe.slug

        def via_api(path: Path, task: MapTask = task, slug: str = slug) -> Map:
            return from_api_map(task, api.answer(slug, path, {"bits": "16"}))

        through_api = evaluate_map(task, root, via_api, limit)
        yolo = evaluate_map(task, root, in_process_map(recipe), limit)
        ok = meets(task, through_api.value())
        sign = (">=" if task == "semantic" else "<=") if ok else "[red]miss[/]"
        table.add_row(
            recipe.name,
            slug,
            MAP_METRIC[task],
            f"{through_api.value():.4f}",
            f"{yolo.value():.4f}",
            f"{abs(through_api.value() - yolo.value()):.4f}",
            f"{sign} {MAP_THRESHOLDS[task]:.2f}",
        )
        if task == "semantic":
            table.add_row(
                "", "", "per-class IoU", ", ".join(f"{k} {v:.3f}" for k, v in through_api.per_class().items())
            )
    return table


def shapes_table(api: Api, recipes: list[Recipe], limit: int | None, root: Path) -> Table:
    table = Table(
        "model",
        "slug",
        "metric",
        "REST API",
        "YOLO().predict()",
        "|diff|",
        "target",
        title="held-out test split",
    )
    for recipe in recipes:
        task = cast(Task, recipe.task)
        slug = recipe.slug

        def via_api(path: Path, task: Task = task, slug: str = slug) -> list[Found]:
            return from_api(task, api.predict(slug, path, VAL_CONF, VAL_IOU))

        through_api = evaluate(task, root, via_api, limit)
        yolo = evaluate(task, root, in_process(recipe), limit)
        ok = through_api >= THRESHOLDS[task]
        table.add_row(
            recipe.name,
            slug,
            METRIC[task],
            f"{through_api:.4f}",
            f"{yolo:.4f}",
            f"{abs(through_api - yolo):.4f}",
            f"{'>=' if ok else '[red]<[/]'} {THRESHOLDS[task]:.2f}",
        )
    return table


def examples_table(api: Api, recipe: Recipe) -> Table:
    """Default parameters (conf 0.25): each labelled object found (IoU >= 0.7), nothing else."""
    from ultralytics.utils import ASSETS

    table = Table(
        "image", "label", "IoU", "conf", title=f"{recipe.slug} at conf 0.25 (labels: demo/examples.py)"
    )
    for name in LABELS:
        found = api.predict(recipe.slug, ASSETS / name, 0.25, 0.45)
        boxes = np.array([[p["box"][k] for k in ("x1", "y1", "x2", "y2")] for p in found]).reshape(-1, 4)
        used: set[int] = set()
        for cls, *xyxy in labelled(name):
            iou = box_iou(np.array([xyxy], np.float64), boxes)[0] if len(boxes) else np.zeros(0)
            same = [j for j in range(len(found)) if found[j]["class_id"] == cls and j not in used]
            best = max(same, key=lambda j: iou[j], default=None)
            if best is None:
                table.add_row(name, f"[red]missed class {cls}[/]", "", "")
                continue
            used.add(best)
            table.add_row(name, found[best]["class"], f"{iou[best]:.3f}", f"{found[best]['confidence']:.3f}")
        for j in sorted(set(range(len(found))) - used):
            table.add_row(name, f"[red]extra {found[j]['class']}[/]", "", f"{found[j]['confidence']:.3f}")
    return table


def evaluate_models(base: str, key: str, names: list[str] | None, limit: int | None, root: Path) -> None:
    console = Console(width=140)
    api = Api(base, key)
    recipes = [r for r in available() if names is None or r.name in names]
    shapes = [r for r in recipes if not r.name.startswith("examples") and r.task not in MAP_TASKS]
    if shapes:
        console.print(shapes_table(api, shapes, limit, root / "data"))
    maps = [r for r in recipes if r.task in MAP_TASKS]
    if maps:
        console.print(maps_table(api, maps, limit, root / "data"))
    for recipe in recipes:
        if recipe.name.startswith("examples"):
            console.print(examples_table(api, recipe))
