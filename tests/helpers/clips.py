"""Seeded video clips for the tracking tests: shapes that move, cross and hide, with a panning camera.

Each clip is drawn in the style of `demo/generate.py` (its textured backgrounds, outlines and
colours) for the task a demo model knows: shapes for detect and segment, pointers for pose and
long or squat rectangles for OBB. Objects bounce inside the frame and pass over one another (the
later one hides the earlier), and a grey panel hides whatever goes behind it, so a tracker that
matched wrongly would hand ids to the wrong object. The view pans slowly across a wider
background, so BoT-SORT's camera-motion compensation has motion to find.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from demo.generate import SHAPES, Task, background, draw_shape, outline, pick_colour

SIZE = 320
PAN = 48  # pixels the view travels across the background over the clip


@dataclass
class Mover:
    kind: str
    centre: NDArray[np.float64]
    velocity: NDArray[np.float64]
    radius: float
    angle: float
    spin: float
    aspect: float
    colour: tuple[int, int, int]

    def step(self) -> None:
        self.centre = self.centre + self.velocity
        for axis in (0, 1):  # bounce off the borders, keeping the whole shape inside
            if not self.radius <= self.centre[axis] <= SIZE - self.radius:
                self.velocity[axis] = -self.velocity[axis]
                self.centre[axis] = float(np.clip(self.centre[axis], self.radius, SIZE - self.radius))
        self.angle += self.spin


def _movers(task: Task, rng: np.random.Generator, canvas: NDArray[np.uint8]) -> list[Mover]:
    movers = []
    for i in range(7):
        radius = float(rng.uniform(22, 38))
        if task == "obb":
            kind, aspect = "rect", float(rng.uniform(2.5, 3.5) if i % 2 == 0 else rng.uniform(1.4, 1.7))
        else:
            kind, aspect = ("pointer" if task == "pose" else SHAPES[i % len(SHAPES)]), 1.0
        centre = rng.uniform(radius, SIZE - radius, 2)
        speed, heading = rng.uniform(2.0, 4.5), rng.uniform(0, 2 * math.pi)
        velocity = np.array([math.cos(heading), math.sin(heading)]) * speed
        spin = float(rng.uniform(-0.04, 0.04))
        colour = pick_colour(rng, canvas)
        movers.append(
            Mover(kind, centre, velocity, radius, float(rng.uniform(0, 2 * math.pi)), spin, aspect, colour)
        )
    return movers


def write_clip(task: Task, path: Path, frames: int = 90, fps: float = 24.0, seed: int = 0) -> Path:
    """Write an `.mp4` clip of `frames` frames at `fps` and return its path."""
    rng = np.random.default_rng([seed, len(task)])
    wide = background(rng, SIZE + PAN)
    movers = _movers(task, rng, wide)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (SIZE, SIZE))
    try:
        for f in range(frames):
            shift = round(PAN * f / max(frames - 1, 1))
            canvas = np.ascontiguousarray(wide[shift // 2 : shift // 2 + SIZE, shift : shift + SIZE])
            for m in movers:
                draw_shape(canvas, outline(m.kind, m.centre, m.radius, m.angle, m.aspect), m.colour)
                m.step()
            x = 130 + round(20 * math.sin(f / 15))  # a panel that objects pass behind
            cv2.rectangle(canvas, (x, 40), (x + 45, 200), (128, 128, 128), -1)
            noise = rng.normal(0, 4, canvas.shape)
            writer.write(np.clip(canvas + noise, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return path


def read_frames(path: Path) -> list[NDArray[np.uint8]]:
    """Every frame of a video file, BGR."""
    capture = cv2.VideoCapture(str(path))
    frames: list[NDArray[np.uint8]] = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return frames
            frames.append(np.asarray(frame, dtype=np.uint8))
    finally:
        capture.release()


def to_webm(clip: Path, path: Path, fps: float) -> Path:
    """The frames of `clip` as a VP8 WebM (what Chromium plays) at `fps`."""
    frames = read_frames(clip)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"VP80"), fps, (width, height))
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def to_y4m(clip: Path, path: Path, fps: int) -> Path:
    """The frames of `clip` as a YUV4MPEG2 file (4:2:0, full range), what Chromium's fake camera
    (`--use-file-for-fake-video-capture`) plays in a loop."""
    frames = read_frames(clip)
    height, width = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())  # Y, then U, then V
    return path
