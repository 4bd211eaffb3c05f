"""MkDocs hooks (`mkdocs.yml`): what the site shows of the API is generated from the code at build
time, so no field is described twice and none can go stale.

- `<!-- predict-options -->` in a page becomes the table of the predict form's fields, read from
  `pipeline.contract.form_schema` (the declaration the form parser, `/docs` and the CLI use);
- `<!-- endpoints -->` becomes the list of the API's routes, read from the app's OpenAPI;
- `openapi.json`, the document the running server serves at `/openapi.json` (and `/docs` shows),
  is written into the site.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPTIONS_MARK = "<!-- predict-options -->"
ENDPOINTS_MARK = "<!-- endpoints -->"


def _project() -> None:
    if str(ROOT) not in sys.path:  # the checkout's code, whatever the venv's editable install points at
        sys.path.insert(0, str(ROOT))


@cache
def openapi() -> dict[str, Any]:
    _project()
    from frontend.app import create_app

    schema: dict[str, Any] = create_app().openapi()
    return schema


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _range(field: dict[str, Any]) -> str:
    """A field's accepted values, as its JSON schema states them."""
    variants = [v for v in field.get("anyOf", [field]) if v.get("type") != "null"]
    spec = variants[0] if variants else field
    if "enum" in spec or "const" in spec:
        return ", ".join(f"`{v}`" for v in spec.get("enum", [spec.get("const")]))
    if spec.get("type") == "boolean":
        return "`true` / `false`"
    if "minimum" in spec or "maximum" in spec:
        return f"{spec.get('minimum', '')}-{spec.get('maximum', '')}"
    if spec.get("format") == "binary":
        return "a file"
    parts = [f"{spec.get('minLength', 0)}-{spec['maxLength']} characters"] if "maxLength" in spec else []
    if "pattern" in spec:
        parts.append(f"`{spec['pattern']}`")
    return ", ".join(parts) or spec.get("type", "")


def options_table() -> str:
    """The predict form's fields: accepted values and each contract's default, from the code."""
    _project()
    from pipeline.contract import form_schema

    seed = form_schema(contract="seed")["properties"]
    platform = form_schema(contract="platform")["properties"]
    assert isinstance(seed, dict) and isinstance(platform, dict)
    rows = ["| field | accepts | default | meaning |", "|---|---|---|---|"]
    for name, field in seed.items():
        default = field.get("default")
        shown = "" if default is None else f"`{json.dumps(default)}`"
        if platform[name].get("default") != default:
            shown = f"{shown} (seed), `{json.dumps(platform[name]['default'])}` (platform)"
        rows.append(
            f"| `{name}` | {_cell(_range(field))} | {shown} | {_cell(field.get('description', ''))} |"
        )
    return "\n".join(rows)


def endpoints_table() -> str:
    rows = ["| method | path | what |", "|---|---|---|"]
    for path, operations in openapi()["paths"].items():
        for method, operation in operations.items():
            rows.append(f"| {method.upper()} | `{path}` | {_cell(operation.get('summary', ''))} |")
    return "\n".join(rows)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "openapi.json", content=json.dumps(openapi(), indent=1)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if OPTIONS_MARK in markdown:
        markdown = markdown.replace(OPTIONS_MARK, options_table())
    if ENDPOINTS_MARK in markdown:
        markdown = markdown.replace(ENDPOINTS_MARK, endpoints_table())
    return markdown
