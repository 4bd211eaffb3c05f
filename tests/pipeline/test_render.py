"""The renderings agree with Ultralytics: the Platform's `results` are `Results.summary(normalize,
decimals)` bit for bit (it is the Platform's own serialiser), and the seed rendering carries the
same numbers in the reference page's shape. Every case has hundreds of instances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ultralytics.engine.results import Results

from pipeline.contract import PredictOptions
from pipeline.render_platform import platform_results
from pipeline.render_seed import seed_predictions
from pipeline.result import Result
from postprocess.obb import OrientedBoxes

H, W = 427, 640  # an odd size: normalising divides by different numbers
NAMES = {i: f"class {i}" for i in range(12)}
OPTIONS = [
    PredictOptions(),
    PredictOptions(normalize=True),
    PredictOptions(decimals=0),
    PredictOptions(decimals=2, normalize=True),
    PredictOptions(decimals=10),
]


def _boxes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xy = rng.uniform(0, [W - 40, H - 40], (n, 2))
    xyxy = np.concatenate([xy, np.minimum(xy + rng.uniform(1, 300, (n, 2)), [W, H])], 1).astype(np.float32)
    conf = rng.uniform(0.01, 1, n).astype(np.float32)
    return xyxy, conf, rng.integers(0, len(NAMES), n).astype(np.int64)


def _table(xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([xyxy, conf[:, None], cls[:, None].astype(np.float32)], 1))


def cases() -> list[tuple[str, Result, Results]]:
    """(task, our Result, Ultralytics' Results) holding the same predictions."""
    rng = np.random.default_rng(0)
    image = np.zeros((H, W, 3), np.uint8)
    out = []
    xyxy, conf, cls = _boxes(rng, 300)
    out.append(
        (
            "detect",
            Result("detect", NAMES, (H, W), cls, conf, xyxy=xyxy),
            Results(image, "x", NAMES, _table(xyxy, conf, cls)),
        )
    )
    xyxy, conf, cls = _boxes(rng, 120)
    masks = np.zeros((len(conf), H, W), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(xyxy.astype(int)):
        masks[i, y1 : max(y2, y1 + 2), x1 : max(x2, x1 + 2)] = 1
        masks[i, (y1 + y2) // 2, x1:x2] = 0  # a cut: two contours, merged as Ultralytics merges them
    theirs = Results(image, "x", NAMES, _table(xyxy, conf, cls), masks=torch.from_numpy(masks))
    polygons = [np.asarray(p, np.float32) for p in theirs.masks.xy]
    ours = Result("segment", NAMES, (H, W), cls, conf, xyxy=xyxy, polygons=polygons)
    out.append(("segment", ours, theirs))
    for dims in (3, 2):
        xyxy, conf, cls = _boxes(rng, 200)
        kpts = rng.uniform(0, [W, H, 1][:dims], (len(conf), 17, dims)).astype(np.float32)
        theirs = Results(image, "x", NAMES, _table(xyxy, conf, cls), keypoints=torch.from_numpy(kpts))
        ours = Result("pose", NAMES, (H, W), cls, conf, xyxy=xyxy, keypoints=kpts)
        out.append((f"pose-{dims}", ours, theirs))
    n = 250
    xywhr = np.concatenate(
        [rng.uniform(0, [W, H], (n, 2)), rng.uniform(2, 200, (n, 2)), rng.uniform(0, np.pi / 2, (n, 1))], 1
    ).astype(np.float32)
    conf, cls = rng.uniform(0.01, 1, n).astype(np.float32), rng.integers(0, len(NAMES), n).astype(np.int64)
    table = torch.from_numpy(np.concatenate([xywhr, conf[:, None], cls[:, None].astype(np.float32)], 1))
    corners = OrientedBoxes(xywhr, conf, cls).corners()
    ours = Result("obb", NAMES, (H, W), cls, conf, xywhr=xywhr, corners=corners)
    out.append(("obb", ours, Results(image, "x", NAMES, obb=table)))
    probs = rng.dirichlet(np.ones(len(NAMES))).astype(np.float32)
    top = np.argsort(-probs, kind="stable")[:5]
    ours = Result("classify", NAMES, (H, W), top.astype(np.int64), probs[top])
    out.append(("classify", ours, Results(image, "x", NAMES, probs=torch.from_numpy(probs))))
    return out


CASES = cases()


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"normalize={o.normalize}-decimals={o.decimals}")
@pytest.mark.parametrize(("task", "ours", "theirs"), CASES, ids=[c[0] for c in CASES])
def test_platform_results_are_ultralytics_summary(
    task: str, ours: Result, theirs: Results, options: PredictOptions
) -> None:
    expected = theirs.summary(normalize=options.normalize, decimals=options.decimals)
    assert len(expected) >= 5
    got = platform_results(ours, options)
    if task != "obb":
        assert got == expected
        return
    # OBB corners come from cos/sin of the angle: NumPy's float32 cos/sin and torch's differ in the
    # last bit for about one angle in six, so a corner may differ by one float32 step (3e-5 at 300 px)
    # before rounding; everything else is exact.
    assert [{**r, "box": None} for r in got] == [{**r, "box": None} for r in expected]
    step = 10.0**-options.decimals
    for ours_row, their_row in zip(got, expected, strict=True):
        assert ours_row["box"].keys() == their_row["box"].keys()
        for k, v in ours_row["box"].items():
            assert abs(v - their_row["box"][k]) <= step + 1e-4, (k, v, their_row["box"][k])


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"normalize={o.normalize}-decimals={o.decimals}")
@pytest.mark.parametrize(("task", "ours", "theirs"), CASES, ids=[c[0] for c in CASES])
def test_seed_and_platform_carry_the_same_numbers(
    task: str, ours: Result, theirs: Results, options: PredictOptions
) -> None:
    seed, platform = seed_predictions(ours, options), platform_results(ours, options)
    assert len(seed) == len(platform) >= 5
    for s, p in zip(seed, platform, strict=True):
        assert (s["class"], s["class_id"], s["confidence"]) == (p["name"], p["class"], p["confidence"])
        assert s.get("box") == p.get("box")
        if "segments" in p:
            assert s["segments"] == [
                list(xy) for xy in zip(p["segments"]["x"], p["segments"]["y"], strict=True)
            ]
        if "keypoints" in p:
            keys = {"x": "x", "y": "y", "conf": "visible"}
            flat = {keys[k]: [kp[k] for kp in s["keypoints"]] for k in s["keypoints"][0]}
            assert flat == p["keypoints"]


def _decimals(value: float) -> int:
    text = repr(value)
    return 0 if "e" in text or "." not in text else len(text.split(".")[1].rstrip("0"))


@pytest.mark.parametrize("decimals", [0, 2, 10])
def test_decimals_bound_every_number(decimals: int) -> None:
    options = PredictOptions(decimals=decimals)
    numbers: list[Any] = []
    for _, ours, _ in CASES:
        for row in platform_results(ours, options):
            numbers.append(row["confidence"])
            numbers += list(row.get("box", {}).values())
            for part in ("segments", "keypoints"):
                for values in row.get(part, {}).values():
                    numbers += values
    assert len(numbers) > 10_000
    assert max(_decimals(v) for v in numbers) <= decimals
    assert all(round(v, decimals) == v for v in numbers)
