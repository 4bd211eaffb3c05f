"""Example images stored with a model (`trident export --examples DIR`), shown by its Test tab.

They live in the version folder (`<model>/<version>/examples/`), so each version carries its own
and they are private like the model: the API serves them only to a caller who may see it. Only
JPEG, PNG and WebP files are kept (by their bytes, not their names), at most `MAX_EXAMPLES` of
them, each at most `MAX_EXAMPLE_BYTES`: a browser shows them as they are.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from exporter.errors import ExportError

EXAMPLES_DIR = "examples"
MAX_EXAMPLES = 8
MAX_EXAMPLE_BYTES = 4 * 1024 * 1024
SUFFIXES = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
NAME = re.compile(r"[^A-Za-z0-9._-]+")


def image_kind(head: bytes) -> str | None:
    """jpeg, png or webp from a file's first bytes; None for anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def copy_examples(source: Path, target: Path) -> list[str]:
    """Copy the example images of folder `source` (sorted by name) into `target`; their new names.

    Raises `ExportError` when the folder is missing or holds no usable image, or a file is too large
    or not an image: an export asked for examples never silently ships without them."""
    if not source.is_dir():
        raise ExportError(f"--examples {source} is not a folder")
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ExportError(f"--examples {source} holds no files")
    if len(files) > MAX_EXAMPLES:
        raise ExportError(f"--examples {source} holds {len(files)} files; at most {MAX_EXAMPLES}")
    target.mkdir(parents=True, exist_ok=True)
    kept: list[str] = []
    for path in files:
        if path.stat().st_size > MAX_EXAMPLE_BYTES:
            raise ExportError(f"example {path.name} is larger than {MAX_EXAMPLE_BYTES // 1024 // 1024} MB")
        with path.open("rb") as f:
            kind = image_kind(f.read(16))
        if kind is None:
            raise ExportError(f"example {path.name} is not a JPEG, PNG or WebP image")
        name = NAME.sub("-", path.stem).strip(".-")[:64] or "example"
        name = f"{name}{SUFFIXES[kind]}"
        if name in kept:
            raise ExportError(f"two examples would both be named {name}")
        shutil.copyfile(path, target / name)
        kept.append(name)
    return kept
