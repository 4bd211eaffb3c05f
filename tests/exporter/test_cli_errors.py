"""`trident export` fails with one clear line and a non-zero exit, and publishes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from trident.cli import app


def run_export(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["export", *args])
    return result.exit_code, result.output


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    return tmp_path / "repo"


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_missing_weights_file(tmp_path: Path, repository: Path) -> None:
    code, out = run_export(str(tmp_path / "nope.pt"), "--slug", "a/b/c", "--repository", str(repository))
    assert code == 1
    assert "weights file not found" in error_line(out)
    assert not repository.exists()


def test_not_an_ultralytics_checkpoint(tmp_path: Path, repository: Path) -> None:
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"this is not a checkpoint" * 100)
    code, out = run_export(str(fake), "--slug", "a/b/c", "--repository", str(repository))
    assert code == 1
    assert "not an Ultralytics checkpoint" in error_line(out)


def test_torch_file_that_is_not_a_yolo_model(tmp_path: Path, repository: Path) -> None:
    import torch

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    code, out = run_export(str(other), "--slug", "a/b/c", "--repository", str(repository))
    assert code == 1
    assert "not an Ultralytics checkpoint" in error_line(out)


@pytest.mark.parametrize("slug", ["a/b", "Owner/p/m", "a/../b", "a/b/c/d"])
def test_invalid_slug(tmp_path: Path, repository: Path, slug: str) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    code, out = run_export(str(weights), "--slug", slug, "--repository", str(repository))
    assert code == 1
    assert "slug" in error_line(out)


def test_semantic_with_too_many_classes(tmp_path: Path, repository: Path) -> None:
    from ultralytics import YOLO

    weights = tmp_path / "sem.pt"
    model = YOLO("yolo26n-sem.yaml")  # YOLO26 semantic segmentation: served as a uint8 class map
    model.model.names = {i: str(i) for i in range(300)}
    model.save(str(weights))
    code, out = run_export(str(weights), "--slug", "a/b/c", "--repository", str(repository))
    assert code == 1
    assert "semantic models with more than 256 classes are not supported" in error_line(out)
    assert not repository.exists() or not any(repository.iterdir())


@pytest.mark.parametrize(
    ("flags", "threads", "spinning"),
    [([], 0, None), (["--ort-threads", "1", "--no-ort-spinning"], 1, False), (["--ort-spinning"], 0, None)],
)
def test_onnx_runtime_flags_reach_the_export(
    tmp_path: Path,
    repository: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    threads: int,
    spinning: bool | None,
) -> None:
    """`--ort-threads` / `--no-ort-spinning` become the serving options the config is written from
    (`test_export.py` checks the config's parameters)."""
    import exporter.export

    seen = []

    def capture(request: exporter.export.ExportRequest, console: object) -> None:
        seen.append(request.options)
        raise exporter.export.ExportError("captured")

    monkeypatch.setattr(exporter.export, "export_model", capture)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    code, out = run_export(str(weights), "--slug", "a/b/c", "--repository", str(repository), *flags)
    assert code == 1 and "captured" in error_line(out)
    assert (seen[0].ort_threads, seen[0].ort_spinning) == (threads, spinning)
