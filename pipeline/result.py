"""One image's predictions as arrays plus names, in the spirit of `supervision.Detections`.

Every rendering (seed JSON, Platform JSON, later video frames and annotated images) is computed
from this alone, so a rendering never re-runs postprocessing and two renderings of one request
always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.modelspec import Task


@dataclass(frozen=True)
class Speed:
    """Milliseconds per stage, as Ultralytics' `Results.speed`."""

    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"preprocess": self.preprocess, "inference": self.inference, "postprocess": self.postprocess}


@dataclass(frozen=True)
class VideoInfo:
    """A video as its answer describes it."""

    width: int
    height: int
    fps: float
    frames: int  # the container's frame count (0 when it states none; the answer: else the frames read)

    def as_dict(self) -> dict[str, object]:
        return {"width": self.width, "height": self.height, "fps": round(self.fps, 5), "frames": self.frames}


def _empty(*shape: int) -> NDArray[np.float32]:
    return np.zeros((0, *shape), dtype=np.float32)


@dataclass(frozen=True)
class Result:
    """Predictions of one image in original-image pixels, best first.

    `cls` and `conf` are set for every task (classify: the top 5). The geometry present depends on
    the task: `xyxy` (detect, segment, pose), `polygons` (segment: one `(m, 2)` outline per
    instance), `keypoints` (pose: `(n, K, 2 or 3)`, the third column the raw visibility),
    `xywhr` and `corners` (obb: centre, size, angle in radians; and the four corners `(n, 4, 2)`).
    Dense tasks have no rows (`cls` and `conf` empty) but one map at the original image size, as
    Ultralytics' `Results` holds it: `semantic_mask` (semantic: `(H, W)` uint8 class ids) or
    `depth` (depth: `(H, W)` float32 metres). A tracked video frame has `track_id`, one per row
    (`pipeline.tracking`); it is None everywhere else, as Ultralytics' `boxes.id` is.
    """

    task: Task
    names: dict[int, str]
    orig_hw: tuple[int, int]
    cls: NDArray[np.int64]
    conf: NDArray[np.float32]
    xyxy: NDArray[np.float32] = field(default_factory=lambda: _empty(4))
    polygons: list[NDArray[np.float32]] | None = None
    keypoints: NDArray[np.float32] | None = None
    xywhr: NDArray[np.float32] | None = None
    corners: NDArray[np.float32] | None = None
    semantic_mask: NDArray[np.uint8] | None = None
    depth: NDArray[np.float32] | None = None
    track_id: NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return len(self.conf)

    def class_names(self) -> list[str]:
        """The name of each prediction's class (an id missing from the metadata reads as itself)."""
        names = self.names
        return [names.get(c, str(c)) for c in self.cls.tolist()]
