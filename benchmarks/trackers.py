"""The trackers' own CPU per frame, apart from the video path around them.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/trackers.py [--boxes 300 122] [--frames 150]

Each tracker follows `--boxes` synthetic objects that drift (10 % of them missed on each frame,
scores from 0.1 to 0.95) for `--frames` frames; BoT-SORT also estimates the camera's motion on
1920x1080 frames (moving crops of bus.jpg and zidane.jpg, as `video.py` writes), which is most of
its cost. CPU time of this process (`time.process_time`), best of `--repeat` runs, so that other
work on the machine inflates it less than a wall clock: what `video.py --track` adds to a frame's
CPU, to set beside that frame's whole CPU in `video.py`'s "CPU ms per frame".
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numpy.typing import NDArray

from benchmarks.video import crops_1080p
from postprocess.trackers import TrackerName, make_tracker
from postprocess.trackers.gmc import SparseOptFlow

Detections = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]


def drifting(boxes: int, frames: int, seed: int = 0) -> list[Detections]:
    rng = np.random.default_rng(seed)
    position = rng.uniform(0, 1700, (boxes, 2))
    size = rng.uniform(20, 200, (boxes, 2))
    velocity = rng.normal(0, 3, (boxes, 2))
    out = []
    for _ in range(frames):
        position = position + velocity
        xyxy = np.concatenate([position, position + size], axis=1) + rng.normal(0, 1, (boxes, 4))
        seen = rng.random(boxes) > 0.1
        scores = rng.uniform(0.1, 0.95, boxes)
        classes = rng.integers(0, 3, boxes)
        out.append((xyxy[seen].astype(np.float32), scores[seen].astype(np.float32), classes[seen]))
    return out


def best_ms(run: object, repeat: int, frames: int) -> float:
    assert callable(run)
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, (time.process_time() - start) * 1000 / frames)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--boxes", type=int, nargs="+", default=[300, 122])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    images = list(crops_1080p(args.frames))

    def motion() -> None:
        gmc = SparseOptFlow()
        for image in images:
            gmc.apply(image)

    print(f"CPU ms per frame, best of {args.repeat} runs of {args.frames} frames:")
    for boxes in args.boxes:
        frames = drifting(boxes, args.frames)

        def track(name: TrackerName, frames: list[Detections] = frames) -> None:
            tracker = make_tracker(name)
            for xyxy, scores, classes in frames:
                tracker.update(xyxy, scores, classes, warp=np.eye(2, 3) if name == "botsort" else None)

        byte = best_ms(lambda: track("bytetrack"), args.repeat, args.frames)
        bot = best_ms(lambda: track("botsort"), args.repeat, args.frames)
        print(f"  {boxes:4d} boxes: ByteTrack {byte:5.2f}  BoT-SORT matching {bot:5.2f}")
    gmc_ms = best_ms(motion, args.repeat, args.frames)
    print(f"  BoT-SORT's camera motion on 1920x1080 frames: {gmc_ms:5.2f} (any number of boxes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
