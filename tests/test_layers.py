"""The layers point one way, and no module reaches into another's private names.

import-linter checks the contracts in pyproject.toml over the real import graph; each contract has
a negative control: the same contracts on a skeleton of the layout where one module imports what
it must not, which must break that contract by name.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("core", "store", "trident", "exporter", "frontend", "pipeline", "postprocess")
SKELETON = [
    *PACKAGES,
    "frontend.app",
    "frontend.deps",
    "frontend.errors",
    "frontend.formats",
    "frontend.metrics",
    "frontend.schemas",
    "frontend.routes",
    "frontend.api",
    "frontend.api.predict",
    "frontend.api.account",
    "frontend.deployments",
    "frontend.guards",
    "frontend.serving",
    "frontend.streams",
]
STACK = "the stack points down"
WEB = "inside the web layer"
ROUTERS = "routers never import each other"
EXPORTER = "build-time code (the exporter) never depends on the web package"


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False, env=env
    )


def contract_states(output: str) -> dict[str, str]:
    """Each contract's name -> KEPT or BROKEN, from lint-imports' report (long names wrap)."""
    report = output.split("Contracts\n---------", 1)[-1].rsplit("Contracts:", 1)[0]
    report = " ".join(re.split(r"-{10,}", report)[-1].split())
    return dict(re.findall(r"\s*(.+?) (KEPT|BROKEN)", report))


def test_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout
    assert set(contract_states(result.stdout).values()) == {"KEPT"}


@pytest.mark.parametrize(
    ("importer", "imported", "contract"),
    [
        ("core", "store", STACK),  # the vocabulary imports nothing of ours
        ("store", "frontend", STACK),  # the stores never import the web layer
        ("pipeline", "frontend", STACK),
        ("frontend", "trident", STACK),  # the CLI is the top: no cycle through it
        ("exporter", "frontend", EXPORTER),
        ("frontend.serving", "frontend.api", WEB),  # the engine knows nothing of HTTP routes
        ("frontend.guards", "frontend.deps", WEB),
        ("frontend.routes", "frontend.metrics", WEB),  # the predict-route table is the web layer's floor
        ("frontend.api.predict", "frontend.api.account", ROUTERS),
    ],
)
def test_a_broken_layer_is_caught(tmp_path: Path, importer: str, imported: str, contract: str) -> None:
    """Negative control: one forbidden import in a skeleton of the layout breaks that contract."""
    for module in SKELETON:
        folder = tmp_path.joinpath(*module.split("."))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "__init__.py").touch()
    importer_file = tmp_path.joinpath(*importer.split(".")) / "__init__.py"
    importer_file.write_text(f"import {imported}\n")
    config = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(config[config.index("[tool.importlinter]") :])
    result = lint_imports(tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0, result.stdout[-3000:]
    states = contract_states(result.stdout)
    assert {name for name, state in states.items() if state == "BROKEN" and name.startswith(contract)}, states
    (tmp_path.joinpath(*importer.split(".")) / "__init__.py").write_text("")
    assert lint_imports(tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}).returncode == 0


def private_imports(root: Path) -> list[str]:
    """`from x import _y` of our own modules anywhere in the tree (tests included)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if any(part.startswith(".") or part in {"build", "node_modules"} for part in path.parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                ours = node.module.split(".")[0] in {*PACKAGES, "tests", "demo", "benchmarks", "scripts"}
                for alias in node.names:
                    if ours and alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root)}: from {node.module} import {alias.name}")
    return found


def test_no_module_imports_another_modules_private_name() -> None:
    assert private_imports(ROOT) == []


def test_a_private_import_is_caught(tmp_path: Path) -> None:
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "bad.py").write_text("from frontend.serving.triton import _map_error\n")
    assert private_imports(tmp_path) == ["pipeline/bad.py: from frontend.serving.triton import _map_error"]
