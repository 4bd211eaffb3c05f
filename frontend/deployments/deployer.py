"""Dedicated endpoints' lifecycle on Triton: each deployment serves one exported model version
through a Triton model of its own, `dep~<owner>~<deployment>~<generation>`, a folder in the model
repository whose files link to the exported version's (four `~` parts: never a catalog slug).

`replace` (and `rollback`, `start`) load the new generation beside the serving one, which Triton
warms (`model_warmup` in the exported config) before calling it ready, then check it answers one
inference; only then is the deployment switched to it, in one database write and in this process's
routing table at once. The old generation is then drained (this process's requests on it finish)
and unloaded. A model that fails to load, warm or answer is unloaded and removed again: the old one
never stopped serving. Only the deployment's folder lives while it runs (stop and delete remove
it), so a Triton restart (`--load-model=*`) loads exactly the running deployments.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from core.modelspec import SPEC_PARAMETER, ModelSpec
from core.slug import Slug
from frontend.errors import DeployFailed, ModelNotFound, ServingError
from frontend.serving.catalog import ServedModel, served_model_from_config
from frontend.serving.inference import blank_tensor, infer
from frontend.serving.triton import Triton
from store.deployments import Deployment, DeploymentStore

log = logging.getLogger("trident.deployments")
PREFIX = "dep"
DRAIN_GRACE_S = 0.5  # requests that read the old route just before the switch reach Triton by then
DRAIN_TIMEOUT_S = 60.0
PROBE_CONF = 0.25
# the steps of a lifecycle change, in order (`Deployer.checkpoint`); a replace passes all of them
STEPS = ("materialized", "loaded", "probed", "switched", "routed", "unloaded", "removed")


def triton_name(owner: str, name: str, generation: int) -> str:
    return "~".join((PREFIX, owner, name, str(generation)))


def generation(name: str) -> int:
    return int(name.rsplit("~", 1)[-1]) if name.startswith(PREFIX + "~") else 0


@dataclasses.dataclass(frozen=True)
class Source:
    """An exported model version on disk."""

    slug: Slug
    version: str
    folder: Path  # <repository>/<triton name>/<version>
    config: mc.ModelConfig
    spec: ModelSpec


class Deployer:
    def __init__(self, triton: Triton, store: DeploymentStore, repository: Path) -> None:
        self._triton = triton
        self.store = store
        self._repository = repository
        self._routes: dict[str, str] = {}  # deployment id -> Triton model serving it, in this process
        self._served: dict[str, ServedModel] = {}  # Triton model -> what to send it
        self.in_flight: Counter[str] = Counter()  # Triton model -> this process's requests on it
        self._locks: dict[str, asyncio.Lock] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        # called with each step's name once it is done (`STEPS`); tests end the process there
        self.checkpoint: Callable[[str], None] = lambda step: None
        self.drain_grace_s = DRAIN_GRACE_S

    def lock(self, deployment_id: str) -> asyncio.Lock:
        return self._locks.setdefault(deployment_id, asyncio.Lock())

    # --- the exported models a deployment can serve

    def source(self, slug: Slug, version: str | None = None) -> Source:
        """The exported version `version` of `slug` (default: the newest), from the repository."""
        model_dir = self._repository / slug.triton_name
        versions = sorted(
            (int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
            if model_dir.is_dir()
            else []
        )
        chosen = version or (str(versions[-1]) if versions else "")
        folder = model_dir / chosen
        if not chosen or not folder.is_dir() or not (model_dir / "config.pbtxt").is_file():
            raise ModelNotFound(f"no exported model {slug}{f' version {version}' if version else ''}")
        config = text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())
        spec = ModelSpec.from_json(config.parameters[SPEC_PARAMETER].string_value)
        return Source(slug, chosen, folder, config, spec)

    def _materialize(self, source: Source, name: str, instances: int) -> Path:
        """`<repository>/<name>/1/` linking to the source version's files, and its config."""
        target = self._repository / name
        shutil.rmtree(target, ignore_errors=True)
        (target / "1").mkdir(parents=True)
        for file in sorted(source.folder.iterdir()):
            if file.is_file():
                os.symlink(os.path.relpath(file, target / "1"), target / "1" / file.name)
        model_dir = source.folder.parent
        for path in [model_dir / "config.pbtxt", *sorted((model_dir / "configs").glob("*.pbtxt"))]:
            # both configs: Triton on the GPU reads configs/onnxruntime.pbtxt (`--model-config-name`)
            config = text_format.Parse(path.read_text(), mc.ModelConfig())
            config.name = name
            if config.instance_group:
                config.instance_group[0].count = instances
            out = target / path.relative_to(model_dir)
            out.parent.mkdir(exist_ok=True)
            out.write_text(text_format.MessageToString(config))
        return target

    def _remove(self, name: str) -> None:
        shutil.rmtree(self._repository / name, ignore_errors=True)

    # --- serving

    def route(self, deployment: Deployment) -> str:
        """The Triton model this process sends the deployment's requests to: its own switch if it
        made one, else the database's (another process's switch)."""
        mine = self._routes.get(deployment.id)
        if mine is None or generation(deployment.triton_name) > generation(mine):
            self._routes[deployment.id] = mine = deployment.triton_name
        return mine

    async def served(self, name: str, deployment: Deployment) -> ServedModel:
        served = self._served.get(name)
        if served is None:
            slug = Slug.from_parts(deployment.owner, deployment.project, deployment.model)
            config = await self._triton.model_config(name)
            found = served_model_from_config(slug, deployment.version, config)
            if found is None:
                raise ServingError(f"the deployment's model {name} carries no Trident spec")
            served = self._served[name] = dataclasses.replace(found, triton_name=name)
        return served

    async def probe(self, served: ServedModel) -> float:
        """One inference on a blank image: the model answers (and is warm). Milliseconds."""
        start = time.perf_counter()
        await infer(self._triton, served, blank_tensor(served), PROBE_CONF)
        return round((time.perf_counter() - start) * 1000, 2)

    async def bring_up(self, deployment: Deployment, source: Source, instances: int) -> tuple[str, float]:
        """Load `source` as the deployment's next generation, warmed and answering; returns its
        Triton name and the probe's latency. On failure nothing of it is left."""
        name = triton_name(deployment.owner, deployment.name, generation(deployment.triton_name) + 1)
        await anyio.to_thread.run_sync(self._materialize, source, name, instances)
        self.checkpoint("materialized")
        try:
            await self._triton.load(name)
            self.checkpoint("loaded")
            probe_deployment = dataclasses.replace(
                deployment, project=source.slug.project, model=source.slug.model, version=source.version
            )
            latency = await self.probe(await self.served(name, probe_deployment))
            self.checkpoint("probed")
        except ServingError as exc:
            await self._discard(name)
            raise DeployFailed(
                f"{source.slug} version {source.version} failed to load or warm up: {exc.detail}"
            ) from None
        return name, latency

    async def switch(self, deployment_id: str, to: str, loaded: str) -> None:
        """Route this process's next requests on the deployment to `to` ("" : none), then retire
        what it served before (this process's route and `loaded`, the database's), except `to`.
        The one way a deployment's old model goes: replace, rollback, stop and delete."""
        old = self._routes.get(deployment_id)
        self._routes[deployment_id] = to
        self.checkpoint("routed")
        for name in sorted({old or "", loaded} - {"", to}):
            await self.retire(name)

    async def retire(self, name: str) -> None:
        """Drain (this process's requests on `name` finish), unload, remove its folder. The folder
        is touched first: a reconciliation leaves folders changed lately to whoever changes them."""
        with contextlib.suppress(OSError):
            os.utime(self._repository / name)
        await asyncio.sleep(self.drain_grace_s)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self.in_flight[name] and time.monotonic() < deadline:  # noqa: ASYNC110 (a shared count)
            await asyncio.sleep(0.02)
        await self._discard(name)

    async def _discard(self, name: str) -> None:
        self._served.pop(name, None)
        try:
            await self._triton.unload(name)
        except ServingError as exc:
            log.warning("unloading %s failed: %s", name, exc.detail)
        self.checkpoint("unloaded")
        await anyio.to_thread.run_sync(self._remove, name)
        self.checkpoint("removed")

    def folders(self) -> dict[str, float]:
        """Every deployment model folder in the repository and when it last changed (epoch s)."""
        if not self._repository.is_dir():
            return {}
        return {
            p.name: p.stat().st_mtime
            for p in self._repository.iterdir()
            if p.name.startswith(PREFIX + "~") and p.is_dir()
        }

    async def discard_orphan(self, name: str) -> None:
        """Unload and remove a folder no deployment serves (nothing of this process uses it)."""
        await self._discard(name)

    def forget(self, deployment_id: str) -> None:
        self._routes.pop(deployment_id, None)
        self._locks.pop(deployment_id, None)

    def spawn(self, work: Any) -> None:
        """Run a lifecycle step in the background (creation), kept referenced until it ends."""
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
