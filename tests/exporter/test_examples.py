"""`trident export --examples DIR`: which files are kept, under which names, and what is refused."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from exporter.errors import ExportError
from exporter.examples import MAX_EXAMPLES, copy_examples


def _jpeg() -> bytes:
    return bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1])


def _png() -> bytes:
    return bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1])


def test_images_are_copied_by_their_bytes_under_safe_names(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "a scene.jpeg").write_bytes(_jpeg())
    (source / "b.jpg").write_bytes(_png())  # named .jpg, a PNG by its bytes
    (source / ".hidden").write_bytes(b"x")
    kept = copy_examples(source, tmp_path / "out")
    assert kept == ["a-scene.jpg", "b.png"]
    assert (tmp_path / "out" / "b.png").read_bytes() == _png()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "holds no files"),
        ({"notes.txt": b"hello"}, "not a JPEG, PNG or WebP"),
        ({f"{i}.jpg": b"" for i in range(MAX_EXAMPLES + 1)}, f"at most {MAX_EXAMPLES}"),
        ({"a.jpg": b"\xff\xd8\xff" + b"\0" * (4 * 1024 * 1024)}, "larger than 4 MB"),
        ({"a.jpg": _jpeg(), "a.jpeg": _jpeg()}, "both be named a.jpg"),
    ],
)
def test_a_bad_folder_fails_the_export(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for name, data in files.items():
        (source / name).write_bytes(data)
    with pytest.raises(ExportError, match=message):
        copy_examples(source, tmp_path / "out")


def test_a_missing_folder_fails_the_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="is not a folder"):
        copy_examples(tmp_path / "nope", tmp_path / "out")
