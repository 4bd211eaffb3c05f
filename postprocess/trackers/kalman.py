"""Constant-velocity Kalman filters for boxes, ported from Ultralytics' `kalman_filter.py`.

ByteTrack filters `(x, y, aspect, h)` and BoT-SORT `(x, y, w, h)`; each state carries the four
velocities too. The arithmetic follows Ultralytics' operation for operation (same order, same
dtypes), so the boxes a track reports are bit for bit the ones `model.track()` reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

_POSITION = 1.0 / 20  # standard deviation of a position, per unit of box size
_VELOCITY = 1.0 / 160  # standard deviation of a velocity, per unit of box size
_MOTION = np.eye(8, 8)
for _i in range(4):
    _MOTION[_i, 4 + _i] = 1.0


class KalmanXYAH:
    """The filter ByteTrack uses: centre, aspect ratio `w / h` and height."""

    def initiate(self, measurement: NDArray[np.floating]) -> tuple[Array, Array]:
        """A new track's state: the measured box, at rest, with an uncertainty scaled by its size."""
        m = np.asarray(measurement, dtype=np.float64)
        mean = np.r_[m, np.zeros_like(m)]
        return mean, np.diag(np.square(self._initial_std(m)))

    def _initial_std(self, m: Array) -> list[float]:
        h = m[3]
        pos, vel = 2 * _POSITION * h, 10 * _VELOCITY * h
        return [pos, pos, 1e-2, pos, vel, vel, 1e-5, vel]

    def _motion_std(self, mean: Array) -> list[Array]:
        h = mean[:, 3]
        pos, vel = _POSITION * h, _VELOCITY * h
        return [pos, pos, 1e-2 * np.ones_like(h), pos, vel, vel, 1e-5 * np.ones_like(h), vel]

    def _measurement_std(self, mean: Array) -> list[Any]:  # floats for one state, rows for `mean.T`
        return [_POSITION * mean[3], _POSITION * mean[3], 1e-1, _POSITION * mean[3]]

    def multi_predict(self, mean: Array, covariance: Array) -> tuple[Array, Array]:
        """One step ahead for `(n, 8)` states and `(n, 8, 8)` covariances at once."""
        sqr = np.square(np.r_[self._motion_std(mean)]).T
        motion_cov = np.zeros((sqr.shape[0], 8, 8))
        motion_cov[:, range(8), range(8)] = sqr
        mean = np.dot(mean, _MOTION.T)
        left = np.dot(_MOTION, covariance).transpose((1, 0, 2))
        return mean, np.dot(left, _MOTION.T) + motion_cov

    def project(self, mean: Array, covariance: Array) -> tuple[Array, Array]:
        """The state as a measurement, with the measurement noise added."""
        innovation_cov = np.diag(np.square(self._measurement_std(mean)))
        return mean[:4].copy(), covariance[:4, :4] + innovation_cov

    def update(
        self, mean: Array, covariance: Array, measurement: NDArray[np.floating]
    ) -> tuple[Array, Array]:
        """Correct a predicted state with the box it was matched to."""
        projected_mean, projected_cov = self.project(mean, covariance)
        gain = np.linalg.solve(projected_cov, covariance[:, :4].T).T
        innovation = measurement - projected_mean
        new_mean = mean + np.dot(innovation, gain.T)
        new_covariance = covariance - np.linalg.multi_dot((gain, projected_cov, gain.T))
        return new_mean, new_covariance

    def update_many(
        self, mean: Array, covariance: Array, measurement: NDArray[np.floating]
    ) -> tuple[Array, Array]:
        """`update` for `(n, 8)` states, `(n, 8, 8)` covariances and `(n, 4)` boxes at once: the
        same operations stacked (`solve` runs LAPACK per matrix either way, and `multi_dot` of
        three such matrices multiplies right first), so each row equals its own `update`."""
        std = np.stack(np.broadcast_arrays(*self._measurement_std(mean.T)), axis=-1)  # (n, 4)
        projected_cov = covariance[:, :4, :4] + np.square(std)[:, :, None] * np.eye(4)
        gain = np.linalg.solve(projected_cov, covariance[:, :, :4].transpose(0, 2, 1)).transpose(0, 2, 1)
        innovation = measurement - mean[:, :4]
        new_mean = mean + np.matmul(innovation[:, None, :], gain.transpose(0, 2, 1))[:, 0]
        spread = np.matmul(gain, np.matmul(projected_cov, gain.transpose(0, 2, 1)))
        return new_mean, covariance - spread


class KalmanXYWH(KalmanXYAH):
    """The filter BoT-SORT uses: centre, width and height, each with its own noise."""

    def _initial_std(self, m: Array) -> list[float]:
        w, h = m[2], m[3]
        pos_w, pos_h = 2 * _POSITION * w, 2 * _POSITION * h
        vel_w, vel_h = 10 * _VELOCITY * w, 10 * _VELOCITY * h
        return [pos_w, pos_h, pos_w, pos_h, vel_w, vel_h, vel_w, vel_h]

    def _motion_std(self, mean: Array) -> list[Array]:
        w, h = mean[:, 2], mean[:, 3]
        pos_w, pos_h, vel_w, vel_h = _POSITION * w, _POSITION * h, _VELOCITY * w, _VELOCITY * h
        return [pos_w, pos_h, pos_w, pos_h, vel_w, vel_h, vel_w, vel_h]

    def _measurement_std(self, mean: Array) -> list[Any]:  # floats for one state, rows for `mean.T`
        return [_POSITION * mean[2], _POSITION * mean[3], _POSITION * mean[2], _POSITION * mean[3]]
