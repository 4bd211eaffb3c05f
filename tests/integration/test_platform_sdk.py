"""The official SDK (`ultralytics-platform`) against Trident: every task, every number.

A frontend on the session stack answers in the Platform format by default
(`TRIDENT_API_FORMAT=platform`: the SDK cannot add `?format=`). For every task (detect, segment,
pose, classify, OBB, and an NMS-free YOLO26 head) `Platform(...).models.predict` must return a
body that is exactly the SDK's `ModelsPredictResponse` (no extra key at any level), and every
number in it must equal the seed-format answer to the same request (`?format=seed`, same
frontend): both come from one result, so the comparison is exact. Then `normalize`, `decimals`,
`metadata`, and the SDK's `models.list` / `models.retrieve` with visibility.
"""

from __future__ import annotations

import base64
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from ultralytics_platform import APIError, Platform
from ultralytics_platform.types import (
    ModelsListResponse,
    ModelsPredictResponse,
    ModelsRetrieveResponse,
    ModelsRetrieveResponseVariant1,
)

from tests.helpers.models import build_busy_model
from tests.helpers.sdk_contract import assert_matches
from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration

_spec = importlib.util.find_spec("ultralytics")
assert _spec is not None and _spec.origin is not None
ASSETS = Path(_spec.origin).parent / "assets"
IMAGES = [ASSETS / "bus.jpg", ASSETS / "zidane.jpg"]
CONF = 0.02  # the busy test models find 300 (max_det) instances at it, on both images
# normalize/decimals: fewer instances (tens per task) and thousands of numbers, in less time
# (the server outlines 300 masks on bus.jpg in seconds on 2 cores)
LIGHT_IMAGE, LIGHT_CONF = ASSETS / "zidane.jpg", 0.1
TINY = Path(__file__).parents[1] / "fixtures" / "tiny.png"

# label -> (slug, task, yaml to build and export (None: the session's export), nms flag)
MODELS: dict[str, tuple[str, str, str | None, bool | None]] = {
    "detect": ("test/coco/yolo11n", "detect", None, None),
    "segment": ("test/platform/seg", "segment", "yolo11n-seg.yaml", None),
    "pose": ("test/platform/pose", "pose", "yolo11n-pose.yaml", None),
    "classify": ("test/platform/cls", "classify", "yolo11n-cls.yaml", None),
    "obb": ("test/platform/obb", "obb", "yolo11n-obb.yaml", None),
    "yolo26-nms-free": ("test/platform/yolo26n-e2e", "detect", "yolo26n.yaml", False),
}
PRIVATE = "alice/secret/det"  # test_access.py's private model; exported here if it has not run


def export_models(stack: Stack, model_dir: Path) -> dict[str, str]:
    """label -> slug of `MODELS`, each exported into the running stack (once a session) and callable."""
    for slug, _, yaml_name, nms in MODELS.values():
        if yaml_name is not None and slug not in stack.exported:
            weights = build_busy_model(yaml_name, model_dir / "platform" / f"{slug.rsplit('/', 1)[1]}.pt")
            stack.export(weights, slug, nms=nms)
    for slug, *_ in MODELS.values():
        stack.wait_model(slug, timeout_s=120)
    return {label: slug for label, (slug, *_) in MODELS.items()}


@pytest.fixture(scope="module")
def models(stack: Stack, model_dir: Path) -> dict[str, str]:
    return export_models(stack, model_dir)


def split(slug: str) -> tuple[str, str, str]:
    owner, project, model = slug.split("/")
    return owner, project, model


def sdk_predict(sdk: Platform, slug: str, image: Path, **options: Any) -> dict[str, Any]:
    with image.open("rb") as f:
        answer = sdk.models.predict(*split(slug), body={"file": f, **options})
    assert_matches(answer, ModelsPredictResponse)
    return dict(answer)


def seed_predict(base: str, key: str, slug: str, image: Path, **options: Any) -> dict[str, Any]:
    """The same request as `sdk_predict`, answered in the seed format."""
    with image.open("rb") as f:
        r = httpx.post(
            f"{base}/api/models/{slug}/predict",
            params={"format": "seed"},
            headers={"Authorization": f"Bearer {key}"},
            files={"file": (image.name, f)},
            data={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()},
            timeout=60,
        )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["success"] is True and set(body) == {"success", "predictions", "image", "speed"}
    return body


RESULT_KEYS = {
    "detect": {"name", "class", "confidence", "box"},
    "segment": {"name", "class", "confidence", "box", "segments"},
    "pose": {"name", "class", "confidence", "box", "keypoints"},
    "classify": {"name", "class", "confidence"},
    "obb": {"name", "class", "confidence", "box"},
}
BOX_KEYS = ("x1", "y1", "x2", "y2")
CORNER_KEYS = ("x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4")


def compare_to_seed(task: str, platform: dict[str, Any], seed: dict[str, Any], where: str) -> int:
    """Assert every number of one image's Platform results equals the seed answer's; returns how
    many instances were compared."""
    image = platform["images"][0]
    assert image["shape"] == [seed["image"]["height"], seed["image"]["width"]], where
    results, preds = image["results"], seed["predictions"]
    assert len(results) == len(preds), f"{where}: {len(results)} Platform results, {len(preds)} seed"
    for i, (r, p) in enumerate(zip(results, preds, strict=True)):
        at = f"{where}, instance {i}"
        assert set(r) == RESULT_KEYS[task], f"{at}: keys {sorted(r)}"
        assert (r["name"], r["class"], r["confidence"]) == (p["class"], p["class_id"], p["confidence"]), at
        if task == "classify":
            assert set(p) == {"class", "class_id", "confidence"}, at
            continue
        if task == "obb":
            assert tuple(r["box"]) == CORNER_KEYS, f"{at}: {r['box']}"
            assert r["box"] == {k: p["box"][k] for k in CORNER_KEYS} and set(p["box"]) == set(CORNER_KEYS), at
            continue
        assert tuple(r["box"]) == BOX_KEYS and r["box"] == p["box"], f"{at}: {r['box']} vs {p['box']}"
        if task == "segment":
            seed_xy = p["segments"]
            assert r["segments"] == {"x": [x for x, _ in seed_xy], "y": [y for _, y in seed_xy]}, at
        if task == "pose":
            kpts = p["keypoints"]
            assert all(set(k) == {"x", "y", "conf"} for k in kpts), f"{at}: {kpts[:1]}"
            assert r["keypoints"] == {
                "x": [k["x"] for k in kpts],
                "y": [k["y"] for k in kpts],
                "visible": [k["conf"] for k in kpts],
            }, at
    return len(results)


def test_every_task_answers_the_sdk_contract_with_the_seed_answers_numbers(
    stack: Stack, sdk: Platform, platform_url: str, models: dict[str, str]
) -> None:
    counts: dict[str, int] = {}
    polygons = 0
    for label, slug in models.items():
        task = MODELS[label][1]
        counts[label] = 0
        for image in IMAGES:
            platform = sdk_predict(sdk, slug, image, conf=CONF, iou=0.7)
            seed = seed_predict(platform_url, stack.api_key, slug, image, conf=CONF, iou=0.7)
            counts[label] += compare_to_seed(task, platform, seed, f"{label} ({slug}) on {image.name}")
            if task == "segment":
                polygons += sum(bool(r["segments"]["x"]) for r in platform["images"][0]["results"])
    assert all(n > 0 for n in counts.values()), counts
    assert counts["classify"] == 5 * len(IMAGES), counts  # top 5 per image
    assert all(n >= 100 for label, n in counts.items() if label != "classify"), counts
    assert polygons >= 100, f"only {polygons} non-empty segment outlines"


def boxes(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The predictions of a Platform answer (`images[0].results`) or a seed one (`predictions`)."""
    return list(answer["images"][0]["results"] if "images" in answer else answer["predictions"])


def test_the_sdk_without_iou_gets_the_platforms_default_iou_070(stack: Stack, sdk: Platform) -> None:
    """The Platform contract's IoU default is Ultralytics' 0.70 (`pipeline.contract.CONTRACT_DEFAULTS`):
    fails if it were the reference page's 0.45."""
    slug, image = MODELS["detect"][0], IMAGES[0]  # the session's own export
    default = boxes(sdk_predict(sdk, slug, image, conf=CONF))
    at_070 = boxes(sdk_predict(sdk, slug, image, conf=CONF, iou=0.7))
    at_045 = boxes(sdk_predict(sdk, slug, image, conf=CONF, iou=0.45))
    assert default == at_070
    assert at_070 != at_045  # the two defaults are told apart


def test_the_seed_contract_without_iou_keeps_the_reference_pages_045(stack: Stack, platform_url: str) -> None:
    """The same frontend answering `?format=seed`: no `iou` is 0.45, the reference page's default."""
    slug, image = MODELS["detect"][0], IMAGES[0]  # the session's own export
    default = boxes(seed_predict(platform_url, stack.api_key, slug, image, conf=CONF))
    at_045 = boxes(seed_predict(platform_url, stack.api_key, slug, image, conf=CONF, iou=0.45))
    at_070 = boxes(seed_predict(platform_url, stack.api_key, slug, image, conf=CONF, iou=0.7))
    assert default == at_045
    assert at_070 != at_045


def coordinates(task: str, result: dict[str, Any]) -> list[tuple[str, float]]:
    """("x" or "y", value) for every coordinate of one Platform result."""
    if task == "classify":
        return []
    out = [(key[0], float(v)) for key, v in result["box"].items()]
    for part in ("segments", "keypoints"):
        if part in result:
            out += [("x", float(v)) for v in result[part]["x"]] + [("y", float(v)) for v in result[part]["y"]]
    return out


def test_normalize_divides_every_coordinate_by_the_image_size(sdk: Platform, models: dict[str, str]) -> None:
    checked = 0
    for label, slug in models.items():
        task = MODELS[label][1]
        pixels = sdk_predict(sdk, slug, LIGHT_IMAGE, conf=LIGHT_CONF, normalize=False)["images"][0]
        normal = sdk_predict(sdk, slug, LIGHT_IMAGE, conf=LIGHT_CONF, normalize=True)["images"][0]
        h, w = pixels["shape"]
        assert normal["shape"] == [h, w]
        assert len(normal["results"]) == len(pixels["results"]) > 0, label
        for i, (n, p) in enumerate(zip(normal["results"], pixels["results"], strict=True)):
            at = f"{label} instance {i}"
            assert (n["name"], n["class"], n["confidence"]) == (p["name"], p["class"], p["confidence"]), at
            if task == "pose":
                assert n["keypoints"]["visible"] == p["keypoints"]["visible"], at
            pairs = list(zip(coordinates(task, n), coordinates(task, p), strict=True))
            for (axis, value), (same_axis, pixel) in pairs:
                assert axis == same_axis
                expected = pixel / (w if axis == "x" else h)
                assert abs(value - expected) <= 1e-5, f"{at}: {axis} {value} vs {pixel}/{w}x{h}"
                # rotated boxes' corners may leave the image (Ultralytics clips only axis-aligned ones)
                assert task == "obb" or 0 <= value <= 1, f"{at}: {axis} {value} outside [0, 1]"
            checked += len(pairs)
    assert checked >= 1000, checked


def numbers(result: dict[str, Any]) -> list[float]:
    """Every number of one Platform result, in a fixed order."""
    out = [float(result["confidence"])]
    out += [float(v) for v in result.get("box", {}).values()]
    for part in ("segments", "keypoints"):
        for values in result.get(part, {}).values():
            out += [float(v) for v in values]
    return out


@pytest.fixture(scope="module")
def ten_decimals(sdk: Platform, models: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """label -> results at `decimals=10`, the reference of the coarser roundings."""
    return {
        label: sdk_predict(sdk, slug, LIGHT_IMAGE, conf=LIGHT_CONF, decimals=10)["images"][0]["results"]
        for label, slug in models.items()
    }


@pytest.mark.parametrize("decimals", [0, 2, 10])
def test_decimals_rounds_every_number(
    sdk: Platform, models: dict[str, str], ten_decimals: dict[str, list[dict[str, Any]]], decimals: int
) -> None:
    checked = 0
    unit = 10.0**-decimals
    for label, slug in models.items():
        reference = ten_decimals[label]
        answer = sdk_predict(sdk, slug, LIGHT_IMAGE, conf=LIGHT_CONF, decimals=decimals)["images"][0]
        results = answer["results"]
        assert len(results) == len(reference) > 0, label
        for i, (r, ref) in enumerate(zip(results, reference, strict=True)):
            assert (r["name"], r["class"]) == (ref["name"], ref["class"]), f"{label} instance {i}"
            got, full = numbers(r), numbers(ref)
            assert len(got) == len(full), f"{label} instance {i}"
            for value, precise in zip(got, full, strict=True):
                at = f"{label} instance {i}: {value} (decimals=10: {precise})"
                assert round(value, decimals) == value, f"{at} has more than {decimals} decimals"
                assert abs(value - round(precise, decimals)) <= unit * (1 + 1e-9), at
            checked += len(got)
    assert checked >= 1000, checked


def test_metadata_names_the_model_its_task_and_classes(
    stack: Stack, sdk: Platform, models: dict[str, str]
) -> None:
    for label, slug in models.items():
        # few instances: the busy models find 300 on tiny.png at any conf, and outline each segment
        # on the 640-pixel mask (some 800,000 points in all)
        answer = sdk_predict(sdk, slug, LIGHT_IMAGE, conf=0.9)
        meta = answer["metadata"]
        names = stack.exported[slug].spec.names
        assert len(answer["images"]) == meta["imageCount"] == 1, label
        assert meta["task"] == MODELS[label][1], label
        assert meta["model"] == slug, label
        assert meta["classNames"] == [names[i] for i in range(len(names))], label
        assert meta["functionTimeCall"] >= 0 and meta["functionTimeAlive"] >= meta["functionTimeCall"], meta
        assert meta["version"], meta


def test_a_base64_source_answers_like_the_same_image_uploaded(sdk: Platform, models: dict[str, str]) -> None:
    encoded = base64.b64encode(TINY.read_bytes()).decode()
    assert len(encoded) <= 4096
    for label in ("detect", "classify"):
        uploaded = sdk_predict(sdk, models[label], TINY)["images"]
        sent: Any = sdk.models.predict(*split(models[label]), body={"source": encoded})
        assert_matches(sent, ModelsPredictResponse)
        assert [(i["shape"], i["results"]) for i in sent["images"]] == [
            (i["shape"], i["results"]) for i in uploaded
        ], label
        assert uploaded[0]["results"], label


def listed_slugs(answer: Any) -> set[str]:
    return {f"{m['owner']}/{m['project']}/{m['model']}" for m in answer["models"]}


def test_models_list_and_retrieve_answer_the_sdk_contract(
    stack: Stack, sdk: Platform, models: dict[str, str]
) -> None:
    for project in {split(slug)[:2] for slug in models.values()}:
        answer = sdk.models.list(*project)
        assert_matches(answer, ModelsListResponse)
        expected = {slug for slug in models.values() if split(slug)[:2] == project}
        assert expected <= listed_slugs(answer), (project, listed_slugs(answer))
        assert all((m["owner"], m["project"]) == project for m in answer["models"]), project
    for label, slug in models.items():
        names = stack.exported[slug].spec.names
        item: Any = sdk.models.retrieve(*split(slug))
        assert_matches(item, ModelsRetrieveResponse)
        assert_matches(item, ModelsRetrieveResponseVariant1)
        model = item["model"]
        assert (model["owner"], model["project"], model["model"]) == split(slug), label
        assert model["visibility"] == "public" and model["hasWeights"] is True, label
        assert model.get("task", MODELS[label][1]) == MODELS[label][1], label
        assert model.get("classNames", [names[i] for i in range(len(names))]) == [
            names[i] for i in range(len(names))
        ], label
        assert item["isOwner"] is (split(slug)[0] == "test"), label


@pytest.fixture(scope="module")
def private_model(stack: Stack, yolo11n_pt: Path, platform_url: str) -> tuple[str, str]:
    """A private model of user "alice" (not the SDK key's user "test"), and a key of alice's.

    Listing reads a frontend's catalog, which rereads Triton's index every second; a model just
    exported may be callable on the session's frontend before the Platform frontend lists it."""
    if PRIVATE not in stack.exported:
        stack.export(yolo11n_pt, PRIVATE, visibility="private")
    alice = stack.create_key("alice", "test")
    stack.wait_model(PRIVATE, key=alice)
    owner, project, _ = split(PRIVATE)
    deadline = time.monotonic() + 30
    with Platform(api_key=alice, base_url=platform_url, max_retries=0) as client:
        while PRIVATE not in listed_slugs(client.models.list(owner, project)):
            assert time.monotonic() < deadline, f"the Platform frontend never listed {PRIVATE}"
            time.sleep(0.2)
    return PRIVATE, alice


def expect_404(call: Callable[[], object]) -> None:
    with pytest.raises(APIError) as caught:
        call()
    assert caught.value.status_code == 404, caught.value.body
    body = caught.value.json
    assert isinstance(body, dict) and set(body) == {"error"}, caught.value.body
    assert isinstance(body["error"], str) and body["error"], caught.value.body


def test_another_users_private_model_is_neither_listed_nor_retrieved(
    sdk: Platform, platform_url: str, private_model: tuple[str, str], bus: Path
) -> None:
    slug, alice_key = private_model
    owner, project, model = split(slug)
    with Platform(api_key=alice_key, base_url=platform_url, max_retries=0) as alice:
        own = alice.models.list(owner, project)  # it exists: its owner sees it
        assert_matches(own, ModelsListResponse)
        assert slug in listed_slugs(own)
        mine: Any = alice.models.retrieve(owner, project, model)
        assert_matches(mine, ModelsRetrieveResponseVariant1)
        assert mine["model"]["visibility"] == "private" and mine["isOwner"] is True
    try:
        theirs: Any = sdk.models.list(owner, project)
    except APIError as exc:  # a project with nothing the key may see may be "not found" as a whole
        theirs = exc
    if isinstance(theirs, APIError):
        assert theirs.status_code == 404 and set(theirs.json or {}) == {"error"}, theirs.body
    else:
        assert_matches(theirs, ModelsListResponse)
        assert slug not in listed_slugs(theirs), theirs
    expect_404(lambda: sdk.models.retrieve(owner, project, model))
    expect_404(lambda: sdk.models.retrieve(owner, project, "no-such-model"))
    with bus.open("rb") as f:
        expect_404(lambda: sdk.models.predict(owner, project, model, body={"file": f}))
