"""Loads what the exporter publishes: Triton runs in explicit model-control mode, so nothing new
loads unless someone asks.

Every `model_refresh_s` the loader reads Triton's repository index and asks Triton to load each
Trident model (`owner~project~model`): a folder never loaded gets loaded, a loaded model is reloaded
only when a new version appeared on disk (Triton compares the folder with what it loaded; an
unchanged model costs one directory scan). A model that failed to load is tried again after
`RETRY_FAILED_S`, not every cycle. Deployment models (`frontend.deployments`) are not Trident
slugs and are left to the deployments, which load and unload their own.
"""

from __future__ import annotations

import asyncio
import logging
import time

from core.slug import InvalidSlugError, Slug
from frontend.errors import ServiceUnavailable, ServingError
from frontend.serving.catalog import Catalog
from frontend.serving.triton import Triton

log = logging.getLogger("trident.frontend")
RETRY_FAILED_S = 30.0


class ModelLoader:
    def __init__(self, triton: Triton, catalog: Catalog, refresh_s: float) -> None:
        self._triton = triton
        self._catalog = catalog
        self._refresh_s = refresh_s
        self._failed: dict[str, float] = {}  # model -> when its load last failed
        self.polling = False  # Triton polls its repository itself (an older deployment): nothing to do

    async def sync(self) -> int:
        """One pass; returns how many loads were asked for."""
        if self.polling:
            return 0
        names, ready = set(), set()
        for entry in await self._triton.repository_index():
            try:
                Slug.from_triton_name(entry["name"])
            except InvalidSlugError:
                continue
            names.add(entry["name"])
            if entry.get("state") == "READY":
                ready.add(entry["name"])
        asked = 0
        now = time.monotonic()
        # models not serving yet first (a new export), then the version checks of the others
        for name in sorted(names, key=lambda n: (n in ready, n)):
            if now - self._failed.get(name, -RETRY_FAILED_S) < RETRY_FAILED_S:
                continue
            asked += 1
            try:
                await self._triton.load(name)
            except ServiceUnavailable:
                raise
            except ServingError as exc:
                if "polling is enabled" in exc.detail:
                    self.polling = True
                    log.info("Triton polls its model repository itself; the frontend loads nothing")
                    return asked
                self._failed[name] = time.monotonic()
                log.warning("model %s failed to load: %s", name, exc.detail)
            else:
                self._failed.pop(name, None)
        return asked

    async def run(self) -> None:
        """Load forever, then reread the catalog (a new model is callable at once)."""
        while True:
            try:
                await self.sync()
                await self._catalog.refresh()
            except ServingError as exc:
                self._catalog.mark_stale()
                log.debug("model sync failed: %s", exc.detail)
            await asyncio.sleep(self._refresh_s)
