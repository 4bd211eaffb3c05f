"""Test models built from Ultralytics' YAMLs, made to produce hundreds of boxes.

An untrained YOLO finds nothing (its activations vanish and the class bias is about -9), which
would make every parity test pass vacuously. So: random weights (seeded), BatchNorm statistics
set from one forward pass over real images (activations stay at a sane scale), COCO names, and
class biases at -4 so scores spread over 1e-3..1, and (for heads that regress distances directly,
YOLO26) box biases that keep boxes a few strides wide instead of sub-pixel slivers, whose IoU
would hinge on float rounding. Dense heads likewise: an untrained semantic model paints one class
everywhere and an untrained depth model answers about 1.2 m everywhere, so their last layer's
weights are scaled up (many classes per image; depths from 0.2 m to the 148 m clamp). The result
is deterministic, and built once a process: the same recipe asked for again is a copy of the
first file, byte for byte, so that exports of it can be recognised as the same (see
`tests.helpers.stack.ExportCache`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from ultralytics import YOLO
from ultralytics.utils import ASSETS, ROOT

COCO_NAMES = yaml.safe_load((ROOT / "cfg" / "datasets" / "coco.yaml").read_text())["names"]
_BUILT: dict[tuple[str, int, float, float], Path] = {}  # recipe -> the first file built from it


def _calibrate(model: torch.nn.Module) -> None:
    images = [
        cv2.resize(cv2.imread(str(ASSETS / f)), (640, 640))[..., ::-1] for f in ("bus.jpg", "zidane.jpg")
    ]
    x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy()).float() / 255
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0  # running stats := this batch's stats
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def build_busy_model(
    yaml_name: str, path: Path, seed: int = 0, cls_bias: float = -4.0, box_bias: float = 6.0
) -> Path:
    """Save a deterministic model built from `yaml_name` (any task) that finds many instances."""
    recipe = (yaml_name, seed, cls_bias, box_bias)
    if (first := _BUILT.get(recipe)) is not None and first.is_file():
        if first != path:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first, path)
        return path
    _BUILT[recipe] = _build(yaml_name, path, seed, cls_bias, box_bias)
    return path


def _build(yaml_name: str, path: Path, seed: int, cls_bias: float, box_bias: float) -> Path:
    torch.manual_seed(seed)
    model = YOLO(yaml_name)
    _calibrate(model.model)
    head = model.model.model[-1]
    if type(head).__name__ == "SemanticSegment":
        head.classifier[-1].weight.data.mul_(20.0)
        return _save(model, path)
    if type(head).__name__ == "Depth":
        head.head[-1].weight.data.mul_(4.0)
        return _save(model, path)
    if not hasattr(head, "cv3"):  # classification head: random logits are already spread
        return _save(model, path)
    for branch in [*head.cv3, *getattr(head, "one2one_cv3", [])]:
        branch[-1].bias.data.fill_(cls_bias)
    if head.reg_max == 1:
        for branch in [*head.cv2, *getattr(head, "one2one_cv2", [])]:
            branch[-1].bias.data.fill_(box_bias)
    return _save(model, path)


def _save(model: YOLO, path: Path) -> Path:
    if len(model.model.names) == len(COCO_NAMES):
        model.model.names = dict(COCO_NAMES)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path
