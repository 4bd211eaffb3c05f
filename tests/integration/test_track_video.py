"""`track=true` on a video gives every frame the ids and boxes `model.track()` gives, through Triton.

The committed demo models (detect, OBB, pose, segment) are exported into the session's stack at
their training size; generated clips (`tests.helpers.clips`: shapes that move, cross and hide
behind a panel while the camera pans) go through the API with `track=true`, and through
`YOLO(<the exported onnx>).track(clip, tracker=..., vid_stride=N)` with the API's `iou` (the
contract's default, 0.45; `conf` is 0.1 on both sides, `model.track()`'s default). Every frame
must show the same rows, with the same ids, boxes (the tracker's, not the detections'),
confidences, classes, keypoints and outlines; a comparison with too few tracked boxes fails.
"""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from ultralytics import YOLO

from demo.models import weights
from demo.train import RECIPES
from frontend.schemas import PlatformPredictResponse, VideoFrame, VideoResponse, VideoSummary
from tests.helpers.clips import write_clip
from tests.integration.test_tasks import compare, settled

pytestmark = pytest.mark.integration
FRAMES = 90  # 3.75 s at 24 fps; at vid_stride 3, 30 processed frames
IOU = 0.45  # the contract's default, given to Ultralytics (whose own is 0.7)
MIN_TRACKED = {1: 450, 3: 140}  # tracked boxes a comparison must hold, by vid_stride
# slug -> (demo recipe, task): the slug's suffix is what `compare` reads the task from
MODELS = {
    "track/shapes/det": "shapes-detect",
    "track/shapes/obb": "shapes-obb",
    "track/shapes/pose": "shapes-pose",
    "track/shapes/seg": "shapes-segment",
}
DETECT = "track/shapes/det"


class Stack(Protocol):
    """What these tests use of the session's stack fixture."""

    base_url: str
    api_key: str

    def export(self, weights: Path, slug: str, **kwargs: Any) -> Any: ...
    def wait_model(self, slug: str, timeout_s: float = 60, key: str | None = None) -> float: ...


@pytest.fixture(scope="module")
def onnx(stack: Stack) -> dict[str, Path]:
    """slug -> the exported ONNX of each demo model, served by the stack."""
    paths = {}
    for slug, name in MODELS.items():
        recipe = RECIPES[name]
        paths[slug] = stack.export(weights(recipe), slug, imgsz=recipe.imgsz).path / "model.onnx"
    for slug in paths:
        stack.wait_model(slug, timeout_s=120)
    return paths


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("track-clips")
    return {
        slug: write_clip(RECIPES[name].task, folder / f"{RECIPES[name].task}.mp4", frames=FRAMES)
        for slug, name in MODELS.items()
    }


_REFERENCES: dict[tuple[str, str, int], list[Any]] = {}


def reference(
    onnx: dict[str, Path], clips: dict[str, Path], slug: str, tracker: str, stride: int
) -> list[Any]:
    """`model.track()`'s results on the clip (computed once per module)."""
    key = (slug, tracker, stride)
    if key not in _REFERENCES:
        model = YOLO(str(onnx[slug]), task=RECIPES[MODELS[slug]].task)
        results = model.track(
            str(clips[slug]),
            tracker=f"{tracker}.yaml",
            vid_stride=stride,
            iou=IOU,
            stream=True,
            verbose=False,
        )
        _REFERENCES[key] = [settled(r) for r in results]
    return _REFERENCES[key]


def post_video(
    stack: Stack, slug: str, clip: Path, headers: dict[str, str] | None = None, **data: object
) -> httpx.Response:
    with clip.open("rb") as f:
        return httpx.post(
            f"{stack.base_url}/api/models/{slug}/predict",
            headers={"Authorization": f"Bearer {stack.api_key}", **(headers or {})},
            params={"format": str(data.pop("format", "seed"))},
            files={"file": (clip.name, f)},
            data={k: str(v) for k, v in data.items()},
            timeout=300,
        )


def tracked(stack: Stack, slug: str, clip: Path, tracker: str, stride: int) -> dict[str, Any]:
    r = post_video(stack, slug, clip, track="true", tracker=tracker, vid_stride=stride)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    VideoResponse.model_validate(body)
    return body


def assert_same_tracks(slug: str, frames: list[dict[str, Any]], refs: list[Any], stride: int) -> int:
    """Frame for frame: the rows Ultralytics shows, their ids, and their geometry; the tracked boxes."""
    assert len(frames) == len(refs)
    assert [f["frame"] for f in frames] == list(range(stride - 1, stride * len(refs), stride))
    count = 0
    for k, (frame, ref) in enumerate(zip(frames, refs, strict=True)):
        boxes = ref.obb if slug.endswith("/obb") else ref.boxes
        ids = None if boxes.id is None else boxes.id.numpy().astype(int).tolist()
        preds = frame["predictions"]
        ours = [p["track_id"] for p in preds] if preds and "track_id" in preds[0] else None
        assert ours == ids, f"{slug}, frame {k}: ids {ours} != {ids}"
        assert all(("track_id" in p) == (ids is not None) for p in preds), f"{slug}, frame {k}"
        compare(slug, preds, ref)  # boxes (0.01 px), confidences, classes, keypoints, outlines
        count += len(ids or [])
    return count


def distinct_by_class(refs: list[Any], slug: str) -> list[dict[str, Any]]:
    """The summary's `tracks` computed from Ultralytics' results."""
    seen: dict[int, set[int]] = defaultdict(set)
    for ref in refs:
        boxes = ref.obb if slug.endswith("/obb") else ref.boxes
        if boxes.id is not None:
            classes, ids = boxes.cls.numpy().astype(int).tolist(), boxes.id.numpy().astype(int).tolist()
            for c, i in zip(classes, ids, strict=True):
                seen[c].add(i)
    names = refs[0].names
    return [{"class": names[c], "class_id": c, "count": len(ids)} for c, ids in sorted(seen.items())]


CASES = [
    (DETECT, "bytetrack", 1),
    (DETECT, "bytetrack", 3),
    (DETECT, "botsort", 1),
    (DETECT, "botsort", 3),
    ("track/shapes/obb", "botsort", 1),
    ("track/shapes/obb", "bytetrack", 3),
    ("track/shapes/pose", "botsort", 3),
    ("track/shapes/seg", "bytetrack", 1),
]


@pytest.mark.parametrize(("slug", "tracker", "stride"), CASES)
def test_every_frame_has_the_ids_and_boxes_of_model_track(
    stack: Stack, onnx: dict[str, Path], clips: dict[str, Path], slug: str, tracker: str, stride: int
) -> None:
    with ThreadPoolExecutor(1) as pool:  # Ultralytics computes while the API answers (2 cores)
        expected = pool.submit(reference, onnx, clips, slug, tracker, stride)
        body = tracked(stack, slug, clips[slug], tracker, stride)
        refs = expected.result()
    count = assert_same_tracks(slug, body["frames"], refs, stride)
    assert count >= MIN_TRACKED[stride], f"only {count} tracked boxes: the comparison proves little"
    assert body["tracks"] == distinct_by_class(refs, slug)
    assert sum(t["count"] for t in body["tracks"]) >= 7  # the clip's seven objects, at least


def test_the_stream_gives_the_whole_answer_line_by_line(
    stack: Stack, onnx: dict[str, Path], clips: dict[str, Path]
) -> None:
    whole = tracked(stack, DETECT, clips[DETECT], "botsort", 1)
    with (
        clips[DETECT].open("rb") as f,
        httpx.stream(
            "POST",
            f"{stack.base_url}/api/models/{DETECT}/predict",
            headers={"Authorization": f"Bearer {stack.api_key}", "Accept": "application/x-ndjson"},
            files={"file": (clips[DETECT].name, f)},
            data={"track": "true", "tracker": "botsort"},
            timeout=300,
        ) as r,
    ):
        assert r.status_code == 200, r.read()
        lines = [json.loads(line) for line in r.iter_lines() if line]
    *frames, summary = lines
    for frame in frames:
        VideoFrame.model_validate(frame)
    VideoSummary.model_validate(summary)
    ids = [[p.get("track_id") for p in f["predictions"]] for f in frames]
    assert ids == [[p.get("track_id") for p in f["predictions"]] for f in whole["frames"]]
    assert [f["predictions"] for f in frames] == [f["predictions"] for f in whole["frames"]]
    assert summary["processed"] == FRAMES and summary["tracks"] == whole["tracks"]


def test_the_platform_answer_adds_track_ids_only_when_asked(stack: Stack, clips: dict[str, Path]) -> None:
    seed = tracked(stack, DETECT, clips[DETECT], "bytetrack", 3)
    r = post_video(  # the seed contract's IoU: the Platform's own default is 0.70
        stack,
        DETECT,
        clips[DETECT],
        track="true",
        tracker="bytetrack",
        vid_stride=3,
        format="platform",
        iou=IOU,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    PlatformPredictResponse.model_validate(body)
    assert [[x.get("track_id") for x in i["results"]] for i in body["images"]] == [
        [p.get("track_id") for p in f["predictions"]] for f in seed["frames"]
    ]
    assert body["metadata"]["tracks"] == [
        {"name": t["class"], "class": t["class_id"], "count": t["count"]} for t in seed["tracks"]
    ]
    plain = post_video(stack, DETECT, clips[DETECT], vid_stride=3, format="platform").json()
    assert "tracks" not in plain["metadata"]
    assert not any("track_id" in x for i in plain["images"] for x in i["results"])


def test_a_still_image_asks_for_a_video(stack: Stack, onnx: dict[str, Path]) -> None:
    image = Path(__file__).parents[1] / "fixtures" / "tiny.png"
    r = post_video(stack, DETECT, image, track="true")
    assert r.status_code == 400, r.text
    assert "track needs a video" in r.json()["error"]["detail"]
