"""Camera-motion compensation for BoT-SORT: Ultralytics' `GMC` with its default `sparseOptFlow`.

`botsort.yaml` sets `gmc_method: sparseOptFlow`: corners of the previous frame are followed by
Lucas-Kanade optical flow and a partial affine warp (rotation, scale, shift) is fitted to them
with RANSAC. The tracks are moved by that warp before they are matched, so a panning camera does
not break them. OpenCV's RANSAC seeds its own generator on every call, so the warp is
deterministic. Only `sparseOptFlow` and `none` are ported; the other methods are not defaults.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from numpy.typing import NDArray

from postprocess.trackers.strack import STrack

log = logging.getLogger(__name__)

GMC_METHODS = ("sparseOptFlow", "none")
Warp = NDArray[np.float64]  # `2 x 3` affine: the camera's motion from one frame to the next


def _corners(frame: NDArray[np.uint8]) -> NDArray[np.float32] | None:
    """Up to 400 Shi-Tomasi corners, with Ultralytics' `feature_params`."""
    found = cv2.goodFeaturesToTrack(
        frame, maxCorners=400, qualityLevel=0.01, minDistance=0, blockSize=3, useHarrisDetector=False, k=0.04
    )
    return None if found is None else np.asarray(found, dtype=np.float32)


class SparseOptFlow:
    """The frame-to-frame warp from optical flow on a half-size grey frame."""

    downscale = 2

    def __init__(self) -> None:
        self.previous: NDArray[np.uint8] | None = None
        self.points: NDArray[np.float32] | None = None

    def reset(self) -> None:
        self.previous = None
        self.points = None

    def apply(self, image: NDArray[np.uint8]) -> Warp:
        """The `2 x 3` warp from the previous frame to this one (identity on the first)."""
        height, width, channels = image.shape
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if channels == 3 else image
        frame = np.asarray(cv2.resize(grey, (width // self.downscale, height // self.downscale)), np.uint8)
        warp = np.eye(2, 3)
        points = _corners(frame)
        if self.previous is None or self.points is None:
            self.previous, self.points = frame.copy(), points
            return warp
        moved, status, _ = cv2.calcOpticalFlowPyrLK(self.previous, frame, self.points, None)
        good = status.ravel().astype(bool)
        before, after = self.points[good], moved[good]
        if before.shape[0] > 4:
            estimate = cv2.estimateAffinePartial2D(before, after, method=cv2.RANSAC)[0]
            if estimate is None:
                log.warning("GMC: affine estimation failed, the tracks are not moved")
            else:
                warp = np.asarray(estimate, dtype=np.float64)
                warp[0, 2] *= self.downscale
                warp[1, 2] *= self.downscale
        else:
            log.warning("GMC: not enough matching points, the tracks are not moved")
        self.previous, self.points = frame.copy(), points
        return warp


def warp_tracks(tracks: list[STrack], warp: Warp) -> None:
    """Move `(x, y, w, h)` track states by an affine warp (`stracks.multi_gmc`).

    Centres and their velocities turn with the warp; axis-aligned sizes take the box enclosing the
    turned box, oriented sizes only scale and the warp's rotation is added to their angle.
    """
    if not tracks:
        return
    means = np.asarray([t.mean for t in tracks])
    covariances = np.asarray([t.covariance for t in tracks])
    rotation, oriented = warp[:2, :2], tracks[0].angle is not None
    r8 = np.kron(np.eye(4, dtype=np.float32), rotation)
    sizes = np.linalg.norm(rotation[:, 0]) * np.eye(2) if oriented else np.abs(rotation)
    r8[2:4, 2:4] = r8[6:8, 6:8] = sizes
    means = np.matmul(r8, means[..., None])[..., 0]
    means[:, :2] += warp[:2, 2]
    covariances = np.matmul(np.matmul(r8, covariances), np.ascontiguousarray(r8.T))
    turn = np.arctan2(rotation[1, 0], rotation[0, 0])
    for t, mean, cov in zip(tracks, means, covariances, strict=True):
        t.mean, t.covariance = mean, cov
        t.angle = t.angle + turn if oriented and t.angle is not None else None
