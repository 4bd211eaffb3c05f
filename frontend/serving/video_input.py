"""The only module that decodes videos: sniff the container, check the limits, read frames.

Frames come from OpenCV's `VideoCapture` (FFmpeg) exactly as Ultralytics' `LoadImagesAndVideos`
reads them, so the frames, and therefore the boxes, match `YOLO(...).predict(video, vid_stride=N)`:
`vid_stride` grabs, then one retrieve; and reading stops after `int(CAP_PROP_FRAME_COUNT /
vid_stride)` frames when the container states a count (Ultralytics' `frames`), at the end of the
stream otherwise. A reader is used by one thread at a time (the route hands it from batch to batch).
"""

from __future__ import annotations

import threading
from dataclasses import replace

import cv2
import numpy as np
from numpy.typing import NDArray

from frontend.errors import InvalidImage, PayloadTooLarge
from frontend.serving.imaging import iso_image_brand
from pipeline.result import VideoInfo

_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def sniff_video(head: bytes) -> str | None:
    """The container named by the leading bytes (at least 16; 400 for TS), or None. An ISO media
    file whose `ftyp` brands name a still image (HEIC, AVIF) is not a video."""
    if iso_image_brand(head) is not None:
        return None
    if head[4:8] == b"ftyp" or head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "mp4"  # MP4, MOV, M4V, 3GP (ISO base media / QuickTime)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"  # MKV, WebM
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(_ASF):
        return "asf"  # ASF, WMV
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg"  # MPEG program stream, elementary video stream
    if len(head) >= 377 and head[0] == head[188] == head[376] == 0x47:
        return "ts"  # MPEG transport stream: a sync byte every 188 bytes
    return None


class VideoReader:
    """Frames of one spooled video at `path`, `vid_stride` apart, within the limits.

    Opening reads the first processed frame, so a video without one is refused before any answer
    starts (also when streaming)."""

    def __init__(self, path: str, vid_stride: int, max_frames: int, max_pixels: int) -> None:
        self.stride = vid_stride
        self.max_frames = max_frames
        self.max_pixels = max_pixels
        self.grabbed = 0  # frames of the video read so far (processed or skipped)
        self.processed = 0
        self._lock = threading.Lock()  # `close` waits for a read in progress on another thread
        self._cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        try:
            self.info = self._open()
            self._next = self._read_one()
            if self._next is None:
                seen = self.info.frames or self.grabbed
                raise InvalidImage(
                    "the video has no frames"
                    if seen == 0
                    else f"the video has {seen} frames, fewer than vid_stride={vid_stride}"
                    if seen < vid_stride
                    else "no frame of the video could be decoded"
                )
        except BaseException:
            self.close()
            raise

    def _open(self) -> VideoInfo:
        cap = self._cap
        if not cap.isOpened():
            raise InvalidImage(
                "the video could not be opened: it is truncated, corrupt or has no video track"
            )
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._check_pixels(width, height)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if count > self.max_frames:
            raise PayloadTooLarge(f"the video has {count} frames; the limit is {self.max_frames} frames")
        self._stop_at = int(count / self.stride) if count > 0 else -1  # Ultralytics' `frames`
        return VideoInfo(width, height, float(cap.get(cv2.CAP_PROP_FPS)), max(count, 0))

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise InvalidImage(
                f"video frames are {width}x{height} pixels; the limit is {self.max_pixels} pixels"
            )

    def _read_one(self) -> tuple[int, NDArray[np.uint8]] | None:
        """The next processed frame (its index in the video, BGR), or None at the end."""
        if self.processed == self._stop_at:
            return None
        for _ in range(self.stride):
            if not self._cap.grab():
                return None
            self.grabbed += 1
            if self.grabbed > self.max_frames:
                raise PayloadTooLarge(f"the video has more than {self.max_frames} frames (the limit)")
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            return None
        self._check_pixels(frame.shape[1], frame.shape[0])
        self.processed += 1
        return self.grabbed - 1, np.asarray(frame, dtype=np.uint8)

    def read(self, n: int) -> list[tuple[int, NDArray[np.uint8]]]:
        """Up to `n` next frames; empty at the end."""
        frames: list[tuple[int, NDArray[np.uint8]]] = []
        with self._lock:
            while len(frames) < n and self._next is not None:
                frames.append(self._next)
                self._next = self._read_one()
        return frames

    @property
    def answered_info(self) -> VideoInfo:
        """The video as its answer describes it: the frame count the container's, else what was read."""
        return replace(self.info, frames=self.info.frames or self.grabbed)

    def close(self) -> None:
        with self._lock:
            self._next = None
            self._cap.release()
