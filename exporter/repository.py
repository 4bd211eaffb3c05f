"""Publish a model folder into a Triton repository so that a running Triton never sees half of it.

Everything is written into a staging folder beside the repository (not inside it: Triton polls
every folder of the repository), then moved in with `rename`, which is atomic on one file system;
inside it only where the repository is a mount of its own (a container's volume).
A new model appears as a whole folder; an existing one gets its next version folder first and
its configs replaced last.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def next_version(model_dir: Path) -> int:
    """One more than the highest numeric version folder (1 for a new model)."""
    if not model_dir.is_dir():
        return 1
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def _staging_parent(repository: Path) -> Path:
    """Beside the repository when that is its file system and writable; else inside it, under a
    dot-name that is no model's (the frontend loads only slug names): the exporter container's
    repository is a mount point of its own, whose parent is neither."""
    parent = repository.parent
    if os.access(parent, os.W_OK) and parent.stat().st_dev == repository.stat().st_dev:
        return parent
    return repository


@contextmanager
def staging_dir(repository: Path) -> Iterator[Path]:
    """A scratch folder on the repository's file system, removed afterwards."""
    repository.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{repository.name}-staging-", dir=_staging_parent(repository)))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(staged_model: Path, repository: Path, name: str, version: int) -> Path:
    """Move a staged model folder (`config.pbtxt`, `configs/`, `<version>/`) into the repository."""
    target = repository / name
    if not target.exists():
        os.rename(staged_model, target)
        return target / str(version)
    os.rename(staged_model / str(version), target / str(version))
    (target / "configs").mkdir(exist_ok=True)
    for config in [staged_model / "config.pbtxt", *sorted((staged_model / "configs").glob("*.pbtxt"))]:
        os.replace(config, target / config.relative_to(staged_model))
    return target / str(version)
