"""The SDK's own CLI, `ul cloud predict`, against Trident: it saves what it got, drawn by YOLO.

`ul` (entry point `ultralytics_platform.cli:main`, installed beside this Python) calls
`models.predict` with `normalize=false` as a multipart field, turns the Platform answer back into
an Ultralytics `Results`, and saves the annotated image and `results.json` under `runs/<task>/`.
It runs in a temporary directory with its own Ultralytics settings (so `runs/` lands there) and
without pytest's environment (Ultralytics saves into its own test folder when it sees pytest).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from ultralytics.utils.plotting import colors
from ultralytics_platform import Platform
from ultralytics_platform.types import ModelsPredictResponse

from tests.helpers.sdk_contract import assert_matches
from tests.helpers.stack import Stack
from tests.helpers.uploads import ul
from tests.integration.test_platform_sdk import MODELS, export_models

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models(stack: Stack, model_dir: Path) -> dict[str, str]:
    return export_models(stack, model_dir)


def ul_cloud_predict(platform_url: str, key: str, slug: str, source: Path, cwd: Path) -> Path:
    """Run `ul cloud predict model=ul://<slug> source=<source>` in `cwd`; the folder it says it
    saved to."""
    output = ul(platform_url, key, cwd, "predict", f"model=ul://{slug}", f"source={source}")
    saved = re.search(r"Results saved to (.+)", output)
    assert saved, output[-3000:]
    folder = Path(saved.group(1).strip())
    assert folder.is_dir() and folder.is_relative_to(cwd.resolve() / "runs"), (folder, output[-3000:])
    return folder


def same_answer(saved: dict[str, Any], fresh: dict[str, Any]) -> None:
    """`results.json` is the answer the CLI got: the same results as a fresh call (timings aside)."""
    assert_matches(saved, ModelsPredictResponse)
    assert [(i["shape"], i["results"]) for i in saved["images"]] == [
        (i["shape"], i["results"]) for i in fresh["images"]
    ]
    timing = {"functionTimeAlive", "functionTimeCall"}
    assert {k: v for k, v in saved["metadata"].items() if k not in timing} == {
        k: v for k, v in fresh["metadata"].items() if k not in timing
    }


def test_ul_cloud_predict_draws_the_answer_on_the_image(
    stack: Stack, platform_url: str, bus: Path, tmp_path: Path
) -> None:
    slug = "test/coco/yolo11n"
    folder = ul_cloud_predict(platform_url, stack.api_key, slug, bus, tmp_path)
    with Platform(api_key=stack.api_key, base_url=platform_url) as client, bus.open("rb") as f:
        fresh: Any = client.models.predict(*slug.split("/"), body={"file": f, "normalize": False})
    results = fresh["images"][0]["results"]
    assert results, "the busy test model finds boxes on bus.jpg at the default conf"
    if (folder / "results.json").exists():
        same_answer(json.loads((folder / "results.json").read_text()), fresh)

    original, drawn = cv2.imread(str(bus)), cv2.imread(str(folder / "bus.jpg"))
    assert original is not None and drawn is not None, sorted(p.name for p in folder.iterdir())
    assert drawn.shape == original.shape
    best = max(results, key=lambda r: r["confidence"])  # drawn last, so on top of the others
    x1, y1, x2 = (int(best["box"][k]) for k in ("x1", "y1", "x2"))
    row = slice(x1 + 4, max(x1 + 5, x2 - 4))
    color = np.array(colors(best["class"], True), dtype=np.int16)  # YOLO's color of that class (BGR)
    distance = np.abs(drawn[y1, row].astype(np.int16) - color).max(axis=1)
    before = np.abs(original[y1, row].astype(np.int16) - color).max(axis=1)
    # JPEG moves colors by a few levels; the box's top edge is its class color nearly everywhere
    assert (distance <= 40).mean() >= 0.8, f"top edge of {best} not drawn: {distance.tolist()[:40]}"
    assert (before <= 40).mean() < 0.5, "the original already had that color there; the check means nothing"
    changed = np.abs(drawn.astype(np.int16) - original.astype(np.int16)).max(axis=2) > 60
    assert changed[y1].any() and changed.mean() < 0.9


@pytest.mark.parametrize("label", ["segment", "pose", "obb", "classify"])
def test_ul_cloud_predict_handles_every_task(
    stack: Stack, platform_url: str, models: dict[str, str], zidane: Path, tmp_path: Path, label: str
) -> None:
    slug = models[label]
    folder = ul_cloud_predict(platform_url, stack.api_key, slug, zidane, tmp_path)
    assert folder.parent.name == MODELS[label][1]  # runs/<task>/predict
    drawn, original = cv2.imread(str(folder / "zidane.jpg")), cv2.imread(str(zidane))
    assert drawn is not None and original is not None and drawn.shape == original.shape
    saved = json.loads((folder / "results.json").read_text())
    assert_matches(saved, ModelsPredictResponse)
    assert saved["metadata"]["task"] == MODELS[label][1] and saved["images"][0]["results"]
