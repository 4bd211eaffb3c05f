"""The models the frontend can serve, discovered from Triton (its repository index and configs).

There is no second registry: a model is servable when Triton says it is READY and its config
carries Trident's `ModelSpec`. The catalog is reread every few seconds (after `frontend.serving.loader` asked
Triton to load what was exported meanwhile) and on a miss, so a newly exported model becomes
callable without restarting anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from core import __version__
from core.modelspec import CANDIDATES_OUTPUT, CONF_INPUT, SPEC_PARAMETER, U8_INPUT, ModelSpec
from core.slug import InvalidSlugError, Slug
from frontend.errors import ModelNotFound, ServingError
from frontend.serving.triton import Triton
from pipeline.render_platform import ModelInfo

log = logging.getLogger(__name__)
MISS_REFRESH_S = 0.5  # at most one extra index read per this interval on unknown slugs


@dataclass(frozen=True)
class ServedModel:
    slug: Slug
    triton_name: str
    version: str
    spec: ModelSpec
    input_name: str
    output_names: tuple[str, ...]
    u8_input: bool = False  # the model takes the letterboxed BGR uint8 image (`U8_INPUT`)
    candidates: bool = False  # the model returns only the candidate anchors (`CANDIDATES_OUTPUT`)
    max_batch: int = 0  # Triton's max_batch_size (0: the model takes no batch axis from Triton)

    def info(self) -> ModelInfo:
        """What the Platform's answer says about the model that ran."""
        version = {"trident": __version__, "model": self.version}
        if ultralytics := self.spec.provenance.get("ultralytics_version"):
            version["ultralytics"] = ultralytics
        return ModelInfo(str(self.slug), self.spec.task, self.spec.names, version)


def served_model_from_config(slug: Slug, version: str, config: dict[str, object]) -> ServedModel | None:
    """Build from a Triton config (JSON form); None when it is not a Trident model."""
    params = config.get("parameters")
    if not isinstance(params, dict) or SPEC_PARAMETER not in params:
        return None
    spec = ModelSpec.from_json(params[SPEC_PARAMETER]["string_value"])
    inputs = config.get("input") or []
    outputs = config.get("output") or []
    assert isinstance(inputs, list)
    assert isinstance(outputs, list)
    return ServedModel(
        slug=slug,
        triton_name=slug.triton_name,
        version=version,
        spec=spec,
        input_name=inputs[0]["name"],
        output_names=tuple(sorted(o["name"] for o in outputs if o["name"] != CANDIDATES_OUTPUT)),
        u8_input=any(i.get("name") == U8_INPUT and i.get("data_type") == "TYPE_UINT8" for i in inputs),
        candidates=any(o["name"] == CANDIDATES_OUTPUT for o in outputs)
        and any(i.get("name") == CONF_INPUT for i in inputs)
        and "output0" in (o["name"] for o in outputs),
        max_batch=int(str(config.get("max_batch_size") or 0)),
    )


class Catalog:
    def __init__(self, triton: Triton, refresh_s: float) -> None:
        self._triton = triton
        self._refresh_s = refresh_s
        self._models: dict[Slug, ServedModel] = {}
        self._lock = asyncio.Lock()
        self._last_refresh = 0.0  # when the last successful refresh started
        self._stale_at = 0.0  # when Triton last failed us

    @property
    def models(self) -> list[ServedModel]:
        return sorted(self._models.values(), key=lambda m: m.slug)

    async def refresh(self) -> None:
        """Reread Triton's index; configs are fetched only for new models or versions."""
        async with self._lock:
            started = time.monotonic()
            ready = await self._triton.ready_models()
            models: dict[Slug, ServedModel] = {}
            for name, version in ready.items():
                try:
                    slug = Slug.from_triton_name(name)
                except InvalidSlugError:
                    continue  # another tool's model in the same repository
                known = self._models.get(slug)
                if known is not None and known.version == version:
                    models[slug] = known
                    continue
                try:
                    served = served_model_from_config(slug, version, await self._triton.model_config(name))
                except (ServingError, KeyError, ValueError, TypeError) as exc:
                    log.warning("skipping model %s: unreadable config (%s)", name, exc)
                    continue
                if served is not None:
                    models[slug] = served
            self._models = models
            self._last_refresh = started

    async def ensure_read(self) -> None:
        """Read Triton's index now unless it was read once already: a replica is ready when it
        knows its models, not only its Triton (its loader's first pass may still be running)."""
        if not self._last_refresh:
            await self.refresh()

    def mark_stale(self) -> None:
        """Triton failed us: the next miss rereads the index instead of trusting an older read."""
        self._stale_at = time.monotonic()

    async def get(self, slug: Slug) -> ServedModel:
        model = self._models.get(slug)
        fresh = self._last_refresh > self._stale_at and time.monotonic() - self._last_refresh < MISS_REFRESH_S
        if model is None and not fresh:
            await self.refresh()
            model = self._models.get(slug)
        if model is None:
            raise ModelNotFound(f"no model {slug}")
        return model
