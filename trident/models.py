"""`trident models list` / `remove`: the exported models in the repository, their versions and
what uses them (deployments, uploads' export jobs).

A version a deployment serves cannot be removed: its folder is what the deployment's Triton
model links to. Removing the last version removes the model's folder (and, for an uploaded
model, its checkpoint and rows, as the API's `DELETE /api/models/...` does).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from core.settings import Settings
from core.slug import InvalidSlugError, Slug

models_app = typer.Typer(help="Exported models: their versions and state; remove one no deployment serves.")


@dataclass(frozen=True)
class Version:
    slug: Slug
    version: str
    folder: Path


def versions(repository: Path) -> list[Version]:
    """Every exported version in the repository, by slug then version number."""
    found = []
    if not repository.is_dir():
        return []
    for model_dir in sorted(repository.iterdir()):
        try:
            slug = Slug.from_triton_name(model_dir.name)
        except InvalidSlugError:
            continue  # a deployment's own folder or something else
        if not (model_dir / "config.pbtxt").is_file():
            continue
        numbers = sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
        found += [Version(slug, str(n), model_dir / str(n)) for n in numbers]
    return found


def _engine(settings: Settings):  # type: ignore[no-untyped-def]  # sqlalchemy's Engine, imported late
    from store.keys import KeyStore

    return KeyStore(settings.key_store_url).engine


@models_app.command("list")
def models_list() -> None:
    """Each exported version: slug, version, size, and the deployments serving it."""
    from store.uploads import deployments_serving

    settings = Settings()
    engine = _engine(settings)
    for v in versions(settings.model_repository):
        size = sum(f.stat().st_size for f in v.folder.rglob("*") if f.is_file())
        serving = deployments_serving(engine, v.slug.owner, v.slug.project, v.slug.model, v.version)
        used = f"served by {', '.join(serving)}" if serving else "not deployed"
        typer.echo(f"{v.slug}  version {v.version}  {size / 1e6:.1f} MB  {used}")


@models_app.command("remove")
def models_remove(
    slug: Annotated[str, typer.Argument(help="owner/project/model")],
    version: Annotated[str | None, typer.Option(help="one version (default: every version)")] = None,
) -> None:
    """Remove a model's version (or all of it) from the repository; refused while a deployment serves it."""
    from store.uploads import UploadStore, deployments_serving

    settings = Settings()
    try:
        parsed = Slug.parse(slug)
    except InvalidSlugError as exc:
        raise _fail(str(exc)) from None
    engine = _engine(settings)
    mine = [v for v in versions(settings.model_repository) if v.slug == parsed]
    chosen = [v for v in mine if version in (None, v.version)]
    if not chosen:
        raise _fail(f"no exported {parsed}{f' version {version}' if version else ''}")
    for v in chosen:
        serving = deployments_serving(engine, parsed.owner, parsed.project, parsed.model, v.version)
        if serving:
            raise _fail(
                f"{parsed} version {v.version} is served by the deployment {serving[0]!r}; delete it first"
            )
    model_dir = settings.model_repository / parsed.triton_name
    if len(chosen) == len(mine):
        shutil.rmtree(model_dir)
        _unload(settings, parsed.triton_name)
        store = UploadStore(engine)
        uploaded = store.model(parsed.owner, parsed.project, parsed.model)
        if uploaded is not None:
            store.remove_model(uploaded)
        typer.echo(f"removed {parsed}")
        return
    for v in chosen:
        shutil.rmtree(v.folder)
        typer.echo(f"removed {parsed} version {v.version}")


def _unload(settings: Settings, name: str) -> None:
    """Ask the running Triton to unload a removed model (it loads only what it is asked to)."""
    import httpx

    try:
        httpx.post(f"{settings.triton_http_url}/v2/repository/models/{name}/unload", timeout=10)
    except httpx.HTTPError:
        typer.echo(f"Triton ({settings.triton_http_url}) did not answer: it unloads {name} when restarted")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)
