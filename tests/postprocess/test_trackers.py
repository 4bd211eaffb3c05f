"""The NumPy trackers give every frame the ids and boxes Ultralytics' `model.track()` gives.

Each generated clip (shapes that move, cross, hide behind a panel, under a panning camera) runs
through a demo model with `YOLO(...).track(clip, tracker=..., vid_stride=...)`. A callback placed
before Ultralytics' tracking callback copies the detections and the frame Ultralytics hands its
tracker; the same detections go through Trident's tracker, and each frame must show the same
detections, with the same ids and the same (Kalman-filtered) boxes. A comparison with too few
tracked boxes fails: a check that passes on nothing is no check.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lap
import numpy as np
import pytest
from numpy.typing import NDArray
from ultralytics import YOLO
from ultralytics.trackers.utils import matching as ul_matching

from demo.generate import Task
from postprocess.trackers import TRACKERS, TrackerName, make_tracker, shown
from postprocess.trackers.matching import fuse_score, iou_distance, linear_assignment
from tests.helpers.clips import write_clip

MODELS = Path(__file__).parents[2] / "demo" / "models"
TASKS: tuple[Task, ...] = ("detect", "obb", "segment", "pose")
FRAMES = 90
MIN_TRACKED = {1: 400, 3: 120}  # tracked boxes a comparison must hold, by vid_stride


@dataclass
class Frame:
    """One frame as Ultralytics' tracker received it, and what `model.track()` showed for it."""

    detections: NDArray[np.float32]  # Boxes.data or OBB.data: geometry, conf, cls
    extra: NDArray[np.float32] | None  # keypoints or masks, per detection
    image: NDArray[np.uint8]
    ids: NDArray[np.int64] | None = None
    boxes: NDArray[np.float32] | None = None
    conf: NDArray[np.float32] | None = None
    shown_extra: NDArray[np.float32] | None = None


def _extra(result: Any) -> NDArray[np.float32] | None:
    if result.keypoints is not None:
        return np.asarray(result.keypoints.data.cpu().numpy(), np.float32).copy()
    if result.masks is not None:
        return np.asarray(result.masks.data.cpu().numpy(), np.float32).copy()
    return None


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[Task, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {task: write_clip(task, folder / f"{task}.mp4", frames=FRAMES) for task in TASKS}


_REFERENCE: dict[tuple[Task, str, int], list[Frame]] = {}


def reference(clip: Path, task: Task, tracker: TrackerName, stride: int) -> list[Frame]:
    """Ultralytics' own tracking of a clip, with the detections its tracker was given (cached)."""
    key = (task, tracker, stride)
    if key not in _REFERENCE:
        frames: list[Frame] = []
        model = YOLO(MODELS / f"shapes-{task}.pt")

        def capture(predictor: Any) -> None:  # runs before the tracking callback
            for r in predictor.results:
                boxes = r.obb if task == "obb" else r.boxes
                frames.append(Frame(boxes.data.cpu().numpy().copy(), _extra(r), r.orig_img.copy()))

        model.add_callback("on_predict_postprocess_end", capture)
        results = model.track(
            str(clip), tracker=f"{tracker}.yaml", vid_stride=stride, stream=True, verbose=False
        )
        for i, r in enumerate(results):
            boxes = r.obb if task == "obb" else r.boxes
            frame = frames[i]
            frame.ids = None if boxes.id is None else boxes.id.cpu().numpy().astype(np.int64)
            frame.boxes = (boxes.xywhr if task == "obb" else boxes.xyxy).cpu().numpy()
            frame.conf = boxes.conf.cpu().numpy()
            frame.shown_extra = _extra(r)
        _REFERENCE[key] = frames
    return _REFERENCE[key]


def replay(frames: list[Frame], task: Task, tracker: TrackerName) -> int:
    """Run Trident's tracker over the captured detections, compare each frame; count tracked boxes."""
    ours = make_tracker(tracker)
    width = 5 if task == "obb" else 4
    tracked = 0
    for n, frame in enumerate(frames):
        det = frame.detections
        tracks = ours.update(det[:, :width], det[:, width], det[:, width + 1].astype(np.int64), frame.image)
        view = shown(tracks, len(det), frame.image.shape[:2])
        where = f"frame {n}"
        assert frame.ids is not None or view.track_id is None, where
        if frame.ids is not None:
            assert view.track_id is not None, where
            assert np.array_equal(view.track_id, frame.ids), where
            tracked += len(frame.ids)
        boxes = det[view.rows, :width] if view.boxes is None else view.boxes
        assert np.array_equal(boxes, frame.boxes), where
        assert np.array_equal(det[view.rows, width], frame.conf), where
        if frame.extra is not None:
            assert frame.shown_extra is not None and np.array_equal(frame.extra[view.rows], frame.shown_extra)
    return tracked


@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("tracker", TRACKERS)
@pytest.mark.parametrize("task", TASKS)
def test_every_frame_matches_ultralytics(
    clips: dict[Task, Path], task: Task, tracker: TrackerName, stride: int
) -> None:
    frames = reference(clips[task], task, tracker, stride)
    assert len(frames) == len(range(0, FRAMES, stride))
    tracked = replay(frames, task, tracker)
    assert tracked >= MIN_TRACKED[stride], f"only {tracked} tracked boxes: the comparison proves little"
    ids = {int(i) for f in frames if f.ids is not None for i in f.ids}
    assert len(ids) >= 7, "every object of the clip should have been given an id"


def test_reset_starts_a_new_video_with_the_same_ids(clips: dict[Task, Path]) -> None:
    """Ultralytics resets its tracker for each new video: a reset tracker must repeat itself."""
    frames = reference(clips["detect"], "detect", "botsort", 1)
    tracker = make_tracker("botsort")
    runs = []
    for _ in range(2):
        tracker.reset()
        ids = []
        for f in frames:
            d = f.detections
            ids.append(tracker.update(d[:, :4], d[:, 4], d[:, 5].astype(np.int64), f.image).track_id.tolist())
        runs.append(ids)
    assert runs[0] == runs[1] and sum(map(len, runs[0])) >= MIN_TRACKED[1]


def _random_boxes(rng: np.random.Generator, n: int, oriented: bool) -> NDArray[np.float32]:
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    if oriented:
        return np.concatenate([xy, wh, rng.uniform(-np.pi, np.pi, (n, 1))], 1).astype(np.float32)
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


@pytest.mark.parametrize("oriented", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_costs_and_assignment_match_ultralytics(seed: int, oriented: bool) -> None:
    """IoU (or ProbIoU), score fusion and `lap.lapjv` give Ultralytics' costs and pairs, ties included."""
    rng = np.random.default_rng(seed)
    a, b = _random_boxes(rng, 12, oriented), _random_boxes(rng, 15, oriented)
    expected = ul_matching.iou_distance(list(a), list(b))
    cost = iou_distance(list(a), list(b))
    np.testing.assert_allclose(cost, expected, rtol=0, atol=1e-6)
    scores = np.round(rng.uniform(0.1, 1, 15), 1).astype(np.float32)  # ties in the fused costs
    fused = fuse_score(cost, scores)
    for thresh in (0.5, 0.8, 0.95):
        ul = ul_matching.linear_assignment(fused, thresh)
        ours = linear_assignment(fused, thresh)
        assert [tuple(m) for m in ul[0]] == ours[0]
        assert list(ul[1]) == ours[1] and list(ul[2]) == ours[2]
    assert len(linear_assignment(fused, 0.95)[0]) > 0


def test_the_trackers_do_not_import_torch() -> None:
    """The serving path must stay free of torch; importing anything under `ultralytics` imports it."""
    code = (
        "import sys, numpy as np; from postprocess.trackers import make_tracker; "
        "t = make_tracker('botsort'); t.update(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), "
        "np.zeros(0, np.int64), np.zeros((64, 64, 3), np.uint8)); "
        "assert 'ultralytics' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_the_installed_ultralytics_assigns_with_lap() -> None:
    """The reference uses `lap.lapjv` (installed, so Ultralytics never pip-installs it mid-test)."""
    assert ul_matching.lap is lap


def _synthetic(seed: int, oriented: bool, frames: int = 80) -> list[NDArray[np.float32]]:
    """Detections of objects that come and go, hide for a while, skip frames and drift past the image's edges.

    The first frames hold no detection, then weak ones only, so every rule of what a frame shows
    is met: untracked detections, a frame hidden while a new track waits, and tracked ones.
    """
    rng = np.random.default_rng(seed)
    starts, ends = rng.integers(3, frames // 2, 8), rng.integers(frames // 2, frames + 20, 8)
    centres, speeds = rng.uniform(0, 320, (8, 2)), rng.uniform(-6, 6, (8, 2))
    sizes, angles = rng.uniform(15, 60, (8, 2)), rng.uniform(-np.pi, np.pi, 8)
    hidden = [
        range(h, h + gap) for h, gap in zip(rng.integers(10, 60, 8), rng.integers(2, 10, 8), strict=True)
    ]
    out = []
    for f in range(frames):
        rows = []
        if f == 1:  # weak detections only: nothing can start a track
            rows.append([100, 100, 30, 20, 0.1, 0.2, 0])
        for k in range(8):
            # missed now and then, and gone for a few frames (longer or shorter than the track buffer)
            if starts[k] <= f < ends[k] and f not in hidden[k] and rng.random() > 0.15:
                (x, y), (w, h) = centres[k] + speeds[k] * f + rng.normal(0, 1.5, 2), sizes[k]
                rows.append([x, y, w, h, angles[k] + 0.01 * f, rng.uniform(0.12, 1.0), k % 3])
        table = np.array(rows, dtype=np.float64).reshape(-1, 7)
        if oriented:
            det = table
        else:
            xy, wh = table[:, :2], table[:, 2:4]
            det = np.concatenate([xy - wh / 2, xy + wh / 2, table[:, 5:7]], 1)
        out.append(det.astype(np.float32))
    return out


@pytest.mark.parametrize("oriented", [False, True], ids=["boxes", "obb"])
@pytest.mark.parametrize("tracker", TRACKERS)
@pytest.mark.parametrize("seed", range(3))
def test_synthetic_streams_match_ultralytics_callback(
    seed: int, tracker: TrackerName, oriented: bool
) -> None:
    """Ultralytics' own per-frame glue (`on_predict_postprocess_end`) against `update` + `shown`.

    A short `track_buffer` makes lost tracks expire and come back within the stream.
    """
    import torch
    from ultralytics.engine.results import Results
    from ultralytics.trackers.bot_sort import BOTSORT
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.trackers.track import on_predict_postprocess_end
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    from postprocess.trackers import TrackerConfig

    cfg = IterableSimpleNamespace(**YAML.load(check_yaml(f"{tracker}.yaml")))
    cfg.track_buffer, cfg.gmc_method = 5, "none"
    task = "obb" if oriented else "detect"
    predictor: Any = type("Predictor", (), {})()
    predictor.args = IterableSimpleNamespace(mode="track", task=task)
    predictor.dataset = IterableSimpleNamespace(mode="video", bs=1)
    predictor.trackers = [(BOTSORT if tracker == "botsort" else BYTETracker)(args=cfg)]
    predictor.vid_path = ["clip.mp4"]
    ours = make_tracker(tracker, TrackerConfig(track_buffer=5, gmc_method="none"))

    image = np.zeros((240, 320, 3), np.uint8)
    width, seen = (5 if oriented else 4), {"tracked": 0, "hidden": 0, "untracked": 0}
    for n, det in enumerate(_synthetic(seed, oriented)):
        geometry = {task if oriented else "boxes": torch.from_numpy(det)}
        predictor.results = [Results(image, "clip.mp4", {0: "a", 1: "b", 2: "c"}, **geometry)]
        on_predict_postprocess_end(predictor)
        result = predictor.results[0]
        boxes = result.obb if oriented else result.boxes
        view = shown(
            ours.update(det[:, :width], det[:, width], det[:, width + 1].astype(np.int64)),
            len(det),
            (240, 320),
        )
        where = f"frame {n}"
        if boxes.id is None:
            assert view.track_id is None, where
            seen["hidden" if len(det) and not len(view.rows) else "untracked"] += 1
        else:
            assert view.track_id is not None and np.array_equal(view.track_id, boxes.id.numpy()), where
            seen["tracked"] += len(view.track_id)
        expected = (boxes.xywhr if oriented else boxes.xyxy).numpy()
        ours_boxes = det[view.rows, :width] if view.boxes is None else view.boxes
        assert np.array_equal(ours_boxes, expected), where
        assert np.array_equal(det[view.rows, width], boxes.conf.numpy()), where
    assert seen["tracked"] >= 150 and seen["hidden"] >= 1 and seen["untracked"] >= 2, seen
