"""Semantic segmentation and depth through Triton, at parity with `YOLO(<exported onnx>).predict()`.

YAML-built YOLO26n-sem and YOLO26n-depth (biased so many classes and a wide depth range appear,
see `tests.helpers.models`) on bus.jpg, zidane.jpg and the odd-size images; the maps come back
as PNGs at the original image size, in both formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from ultralytics import YOLO
from ultralytics_platform.types import ModelsPredictResponse

from pipeline.render_maps import decode_depth_png, decode_mask_png
from tests.helpers.hostile import png_of_zeros
from tests.helpers.models import build_busy_model
from tests.helpers.sdk_contract import assert_matches
from tests.helpers.stack import Stack, assert_error

pytestmark = pytest.mark.integration
SEM, DEPTH = "maps/v26/sem", "maps/v26/depth"


@pytest.fixture(scope="module")
def map_models(stack: Stack, model_dir: Path) -> dict[str, Path]:
    """Export both into the running stack; slug -> exported ONNX."""
    onnx = {}
    for slug, yaml_name in ((SEM, "yolo26n-sem.yaml"), (DEPTH, "yolo26n-depth.yaml")):
        weights = build_busy_model(yaml_name, model_dir / f"{yaml_name[:-5]}.pt")
        onnx[slug] = stack.export(weights, slug).path / "model.onnx"
    for slug in onnx:
        stack.wait_model(slug, timeout_s=120)
    return onnx


def _post(stack: Stack, slug: str, image: Path, api_format: str = "seed", **data: object) -> httpx.Response:
    with image.open("rb") as f:
        return httpx.post(
            f"{stack.base_url}/api/models/{slug}/predict",
            params={"format": api_format},
            headers={"Authorization": f"Bearer {stack.api_key}"},
            files={"file": (image.name, f)},
            data={k: str(v) for k, v in data.items()},
            timeout=120,
        )


def test_semantic_class_maps_match_ultralytics(
    stack: Stack, map_models: dict[str, Path], all_images: list[Path]
) -> None:
    model = YOLO(str(map_models[SEM]), task="semantic")
    for image in all_images:
        ref = model.predict(str(image), verbose=False)[0]
        expected = ref.semantic_mask.data.numpy()
        r = _post(stack, SEM, image)
        assert r.status_code == 200, r.text
        body = r.json()
        where = image.name
        mask = decode_mask_png(body["semantic_mask"])
        assert body["semantic_mask"]["shape"] == list(expected.shape) == list(mask.shape), where
        same = float((mask == expected).mean())
        assert same >= 0.999, f"{where}: {same:.4%}"
        summary = ref.summary()
        assert [(p["class_id"], p["class"]) for p in body["predictions"]] == [
            (s["class"], s["name"]) for s in summary
        ], where
        np.testing.assert_allclose(
            [p["pixel_ratio"] for p in body["predictions"]], [s["pixel_ratio"] for s in summary], atol=2e-3
        )
        assert abs(sum(p["pixel_ratio"] for p in body["predictions"]) - 1) <= 1e-5 * len(summary), where
        if image.name in ("bus.jpg", "zidane.jpg"):
            assert len(summary) >= 5, f"{where}: the test model paints too few classes ({len(summary)})"


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_depth_maps_match_ultralytics(
    stack: Stack, map_models: dict[str, Path], all_images: list[Path], bits: int
) -> None:
    model = YOLO(str(map_models[DEPTH]), task="depth")
    for image in all_images:
        expected = model.predict(str(image), verbose=False)[0].depth.data.numpy()
        r = _post(stack, DEPTH, image, bits=bits)
        assert r.status_code == 200, r.text
        body = r.json()
        where = f"{image.name} at {bits} bits"
        assert body["predictions"] == [], where
        obj = body["depth"]
        assert obj["bits"] == bits and obj["shape"] == list(expected.shape), where
        np.testing.assert_allclose([obj["min"], obj["max"]], [expected.min(), expected.max()], rtol=1e-3)
        assert expected.max() / expected.min() > 5, f"{where}: a flat test map would prove little"
        depth = decode_depth_png(obj)
        step = obj["max"] / (2**bits - 1)
        error = np.abs(depth - expected) - 1e-3 * expected  # the model's tolerance, then quantisation
        assert error.max() <= step, f"{where}: off by {error.max():.3g} beyond 1e-3 (one step: {step:.3g})"


@pytest.mark.parametrize("slug", [SEM, DEPTH])
def test_platform_answers_match_the_sdk_contract(
    stack: Stack, map_models: dict[str, Path], bus: Path, slug: str
) -> None:
    r = _post(stack, slug, bus, "platform", bits=16)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert_matches(body, ModelsPredictResponse)
    image = body["images"][0]
    assert body["metadata"]["task"] == ("semantic" if slug == SEM else "depth")
    if slug == SEM:
        assert "depth" not in image and image["semantic_mask"]["shape"] == [1080, 810]  # bits: ignored
        assert {"name", "class", "pixel_ratio"} == set(image["results"][0])
        assert abs(sum(row["pixel_ratio"] for row in image["results"]) - 1) < 1e-3
    else:
        assert image["results"] == [] and "semantic_mask" not in image and image["depth"]["bits"] == 16


def test_bits_out_of_range_is_refused_naming_the_field(
    stack: Stack, map_models: dict[str, Path], bus: Path
) -> None:
    assert_error(_post(stack, DEPTH, bus, bits=10), 400, "Invalid request", "bits must be 8, 12 or 16")


def test_a_40_mp_image_on_a_depth_model_is_refused_before_decoding(
    stack: Stack, map_models: dict[str, Path]
) -> None:
    r = httpx.post(
        f"{stack.base_url}/api/models/{DEPTH}/predict",
        headers={"Authorization": f"Bearer {stack.api_key}"},
        files={"file": ("huge.png", png_of_zeros(8_000, 5_001), "image/png")},
        timeout=60,
    )
    assert_error(r, 400, "Invalid image", "8000x5001 pixels; the limit is 40000000")
