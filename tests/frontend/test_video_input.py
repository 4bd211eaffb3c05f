"""The video reader on real files OpenCV writes here: containers sniffed by content, Ultralytics'
`vid_stride` frames, and the limits, also for a container that states no frame count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from frontend.errors import InvalidImage, PayloadTooLarge
from frontend.serving import video_input
from frontend.serving.video_input import VideoReader, sniff_video

CONTAINERS = {  # extension -> (fourcc, what sniff_video names it)
    "mp4": ("mp4v", "mp4"),
    "m4v": ("mp4v", "mp4"),
    "mkv": ("mp4v", "matroska"),
    "webm": ("VP80", "matroska"),
    "avi": ("MJPG", "avi"),
    "wmv": ("WMV2", "asf"),
    "mpg": ("PIM1", "mpeg"),
    "ts": ("mp4v", "ts"),
}


def write(path: Path, fourcc: str, frames: int, size: tuple[int, int] = (64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), i * 8 % 256, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("ext", list(CONTAINERS))
def test_every_container_is_recognised_by_its_bytes(tmp_path: Path, ext: str) -> None:
    fourcc, kind = CONTAINERS[ext]
    path = write(tmp_path / f"clip.{ext}", fourcc, 5)
    assert sniff_video(path.read_bytes()[:512]) == kind


def test_images_and_other_bytes_are_not_videos(bus: Path, tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), np.zeros((8, 8, 3), np.uint8))
    for data in (bus.read_bytes(), png.read_bytes(), b"GIF89a" + b"\0" * 600, b"\0" * 600, b""):
        assert sniff_video(data[:512]) is None


@pytest.mark.parametrize(("stride", "indices"), [(1, list(range(10))), (3, [2, 5, 8]), (4, [3, 7])])
def test_frames_are_every_stride_th_as_ultralytics_reads_them(
    tmp_path: Path, stride: int, indices: list[int]
) -> None:
    reader = VideoReader(str(write(tmp_path / "ten.mp4", "mp4v", 10)), stride, 100, 10**6)
    try:
        got = [index for batch in iter(lambda: reader.read(4), []) for index, _ in batch]
    finally:
        reader.close()
    assert got == indices
    assert reader.info.frames == 10


OPENCV_CAPTURE = cv2.VideoCapture


class NoCount:
    """A `VideoCapture` whose container states no frame count (as some streams do)."""

    def __init__(self, *args: Any) -> None:
        self._cap = OPENCV_CAPTURE(*args)

    def get(self, prop: int) -> float:
        return -1.0 if prop == cv2.CAP_PROP_FRAME_COUNT else float(self._cap.get(prop))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cap, name)


def test_without_a_stated_count_the_frame_limit_is_checked_while_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(write(tmp_path / "twelve.mp4", "mp4v", 12))
    monkeypatch.setattr(video_input.cv2, "VideoCapture", NoCount)
    reader = VideoReader(path, 1, 12, 10**6)  # at the limit: read to the end
    assert len(reader.read(100)) == 12
    reader.close()
    reader = VideoReader(path, 1, 11, 10**6)
    with pytest.raises(PayloadTooLarge, match="more than 11 frames"):
        reader.read(100)
    reader.close()


def test_a_stated_count_over_the_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge, match="the video has 12 frames; the limit is 11 frames"):
        VideoReader(str(write(tmp_path / "twelve.mp4", "mp4v", 12)), 1, 11, 10**6)


def test_frames_over_the_pixel_limit_and_a_stride_past_the_end_are_refused(tmp_path: Path) -> None:
    path = str(write(tmp_path / "small.mp4", "mp4v", 2, (64, 48)))
    with pytest.raises(InvalidImage, match="video frames are 64x48 pixels; the limit is 3000 pixels"):
        VideoReader(path, 1, 100, 3000)
    with pytest.raises(InvalidImage, match="the video has 2 frames, fewer than vid_stride=5"):
        VideoReader(path, 5, 100, 10**6)
