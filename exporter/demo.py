"""The demo detector `make run` serves when the repository is empty.

It is YOLO11n built from Ultralytics' YAML with the COCO class names and *untrained* weights
(nothing can be downloaded here), so it answers with the documented JSON but finds nothing at
the default confidence. Trained demo models are the subject of their own issue.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DEMO_SLUG = "demo/untrained/yolo11n"


def build_demo_weights(path: Path) -> Path:
    from ultralytics import YOLO  # type: ignore[attr-defined, unused-ignore]
    from ultralytics.utils import ROOT

    path.parent.mkdir(parents=True, exist_ok=True)
    model = YOLO("yolo11n.yaml")
    names = yaml.safe_load((ROOT / "cfg" / "datasets" / "coco.yaml").read_text())["names"]
    model.model.names = names  # type: ignore[union-attr, unused-ignore]
    model.save(str(path))
    return path
