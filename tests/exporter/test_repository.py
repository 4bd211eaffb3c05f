"""Where an export is staged before its atomic `rename` into the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.repository import staging_dir


def test_an_export_is_staged_beside_the_repository(tmp_path: Path) -> None:
    repository = tmp_path / "models"
    with staging_dir(repository) as stage:
        assert stage.parent == tmp_path and stage.name.startswith(".models-staging-")
    assert not stage.exists() and list(repository.iterdir()) == []


@pytest.mark.parametrize("reason", ["read-only parent", "another file system"])
def test_a_repository_mounted_on_its_own_stages_inside_under_a_dot_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    """A container's /models: its parent (/) is not writable, or not the volume's file system."""
    repository = tmp_path / "models"
    repository.mkdir()
    if reason == "read-only parent":
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    else:
        real_stat = Path.stat

        def stat(self: Path, **kwargs: bool) -> os.stat_result:
            result = real_stat(self, **kwargs)
            if self == tmp_path:
                return os.stat_result((*result[:2], result.st_dev + 1, *result[3:]))
            return result

        monkeypatch.setattr(Path, "stat", stat)
    with staging_dir(repository) as stage:
        assert stage.parent == repository and stage.name.startswith(".models-staging-")
    assert list(repository.iterdir()) == []
