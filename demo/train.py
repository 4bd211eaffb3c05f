"""Train the demo models on the CPU from YAML: seeded, resumable, one model per recipe.

`trident demo train [NAME...]` runs here in the background (`nice`), writes Ultralytics runs under
`<data_dir>/demo/runs`, and copies each finished model to `demo/models/NAME.pt` with its card.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from demo.dense import MapTask, write_map_dataset
from demo.generate import Task, write_dataset

MODELS_DIR = Path(__file__).parent / "models"
# Ultralytics' scales are [depth, width, max channels]. "t" is YOLO11n at half its width: the shapes are
# easy, and a CPU epoch costs about half of what yolo11n's does.
SCALES = {"t": [0.50, 0.125, 1024], "n": [0.50, 0.25, 1024]}


@dataclass(frozen=True)
class Recipe:
    """How one demo model is trained; `data` builds its data set and returns what `train(data=)` takes."""

    name: str
    task: Task | MapTask
    yaml_name: str
    imgsz: int
    epochs: int
    slug: str
    data: Callable[[Path], Path]
    extra: tuple[tuple[str, Any], ...] = ()
    scale: str = "t"
    finetune: tuple[tuple[str, Any], ...] = ()  # a second stage from the first's best weights, if any


def _shapes(task: Task) -> Callable[[Path], Path]:
    return lambda root: write_dataset(task, root / "data")


def _maps(task: MapTask) -> Callable[[Path], Path]:
    return lambda root: write_map_dataset(task, root / "data")


def _examples(root: Path) -> Path:
    from demo.examples import write_examples_dataset

    return write_examples_dataset(root / "data" / "examples")


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "shapes-classify",
            "classify",
            "yolo11-cls.yaml",
            64,  # the shapes fill the 128 px images; at 64 px an epoch of 6000 images takes 30 s here
            30,
            "demo/shapes/classify",
            _shapes("classify"),
            # From scratch, 1200 images stayed at chance for 13 epochs; 6000 at 64 px reach 0.93 in 6.
            (
                ("erasing", 0.0),
                ("auto_augment", None),
                ("scale", 0.2),
                ("optimizer", "AdamW"),
                ("lr0", 0.002),
            ),
            scale="n",
        ),
        Recipe("shapes-detect", "detect", "yolo11.yaml", 320, 30, "demo/shapes/detect", _shapes("detect")),
        Recipe("shapes-obb", "obb", "yolo11-obb.yaml", 320, 30, "demo/shapes/obb", _shapes("obb")),
        Recipe("shapes-pose", "pose", "yolo11-pose.yaml", 320, 30, "demo/shapes/pose", _shapes("pose")),
        Recipe(
            "shapes-segment",
            "segment",
            "yolo11-seg.yaml",
            320,
            30,
            "demo/shapes/segment",
            _shapes("segment"),
            # the mask head slows the boxes down: mask mAP50 was 0.57 after 20 of 30 epochs (detect: 0.87),
            # so a second run from the best weights, the learning rate restarted lower
            finetune=(("epochs", 20), ("optimizer", "AdamW"), ("lr0", 0.001), ("warmup_epochs", 0)),
        ),
        Recipe(
            "shapes-semantic",
            "semantic",
            "yolo26-sem.yaml",
            160,  # demo/dense.py draws 160 px scenes: a CPU epoch of 1000 costs a fraction of a 320 px one
            60,
            "demo/shapes/semantic",
            _maps("semantic"),
            (
                ("time", 0.65),  # hours: Ultralytics then fits the epochs (and their schedule) to the time
                # From scratch it learnt too slowly for a CPU: with Ultralytics' defaults (AdamW at 0.0011,
                # batch 16, unweighted classes) it painted everything background after 9 epochs (mIoU 0.17),
                # and with the settings below still only reached mIoU 0.26 after 8. YOLO26's backbone and
                # neck are YOLO11's, so they start from shapes-segment's (276 of 364 tensors; its data are
                # generate.py's 320 px segment scenes, other seeds than these): the head has features to use.
                ("pretrained", str(MODELS_DIR / "shapes-segment.pt")),
                ("batch", 8),  # twice the steps per epoch
                ("optimizer", "AdamW"),
                ("lr0", 0.002),
                ("warmup_epochs", 1),
                ("cls_pw", 1.0),  # classes weighted by their rarity (ENet's 1/ln(1.02 + share))
            ),
            # mIoU 0.794 on the 200 held-out scenes after that, still rising: 12 more minutes on whole
            # scenes (no mosaic), the rate restarted lower
            finetune=(
                ("time", 0.2),
                ("batch", 8),
                ("optimizer", "AdamW"),
                ("lr0", 0.0005),
                ("warmup_epochs", 0),
                ("cls_pw", 1.0),
                ("mosaic", 0.0),
                ("close_mosaic", 0),
            ),
        ),
        Recipe(
            "shapes-depth",
            "depth",
            "yolo26-depth.yaml",
            160,
            60,
            "demo/shapes/depth",
            _maps("depth"),
            # zooming would change the focal length the depth follows from (mosaic is off for depth anyway)
            (("time", 1.4), ("scale", 0.0)),
        ),
        Recipe(
            "examples-detect",
            "detect",
            "yolo11.yaml",
            320,
            60,
            "demo/examples/detect",
            _examples,
            # 80 COCO classes make Ultralytics' "auto" optimizer pick AdamW at lr 0.00012, which barely moves
            # in 60 short epochs; shapes models (1-4 classes) get 0.00125-0.002 from it, as set here.
            (
                ("mosaic", 1.0),
                ("scale", 0.6),
                ("degrees", 5.0),
                ("mixup", 0.1),
                ("optimizer", "AdamW"),
                ("lr0", 0.002),
            ),
            finetune=(  # then whole images only: mosaic's clipped boxes taught it Zidane without his arm
                ("epochs", 20),
                ("mosaic", 0.0),
                ("close_mosaic", 0),
                ("optimizer", "AdamW"),
                ("lr0", 0.0005),
                ("warmup_epochs", 0),
                ("scale", 0.3),
                ("mixup", 0.0),
            ),
        ),
    )
}


def model_yaml(recipe: Recipe, root: Path) -> Path:
    """The architecture YAML: Ultralytics' own for the task, at the demo's scale."""
    from ultralytics.utils import ROOT

    family = "26" if recipe.yaml_name.startswith("yolo26") else "11"
    cfg = yaml.safe_load((ROOT / "cfg" / "models" / family / recipe.yaml_name).read_text())
    cfg["scales"] = {recipe.scale: SCALES[recipe.scale]}
    head = cfg["head"][-1]
    if head[2] == "Depth":  # its decoder width, 256 at every scale, is 7/8 of the compute at "n"
        head[3] = [int(head[3][0] * SCALES[recipe.scale][1] / SCALES["n"][1])]
    path = (
        root / "cfg" / f"{recipe.yaml_name.removesuffix('.yaml')}{recipe.scale}.yaml"
    )  # the name picks the scale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _stage(start: str, data: Path, root: Path, name: str, recipe: Recipe, args: dict[str, Any]) -> Path:
    """One training run, resumed if it was interrupted; returns its best weights."""
    from ultralytics import YOLO  # type: ignore[attr-defined, unused-ignore]

    run = root / "runs" / name
    if (run / "done.json").exists():
        return run / "weights" / "best.pt"
    started = time.time()
    if (run / "weights" / "last.pt").exists():
        YOLO(str(run / "weights" / "last.pt")).train(resume=True)
    else:
        YOLO(start).train(**{
            "data": str(data), "imgsz": recipe.imgsz, "batch": 16, "workers": 2, "device": "cpu", "seed": 0,
            "deterministic": True, "plots": False, "project": str(root / "runs"), "name": name,
            "exist_ok": True,
        } | args)  # fmt: skip
    (run / "done.json").write_text(json.dumps({"train_seconds": round(time.time() - started)}))
    return run / "weights" / "best.pt"


def train(recipe: Recipe, root: Path) -> Path:
    """Train (or resume) one recipe; return the path of its best weights."""
    data = recipe.data(root)
    root = root.resolve()  # Ultralytics puts a relative `project` under ./runs/<task>/
    first = {"epochs": recipe.epochs, **dict(recipe.extra)}
    best = _stage(str(model_yaml(recipe, root)), data, root, recipe.name, recipe, first)
    if recipe.finetune:
        best = _stage(str(best), data, root, f"{recipe.name}-finetune", recipe, dict(recipe.finetune))
    return best
