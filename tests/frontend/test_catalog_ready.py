"""A replica reports ready only once it has read its models (`/readyz` -> `Catalog.ensure_read`)."""

from __future__ import annotations

from typing import Any

from frontend.serving.catalog import Catalog
from tests.helpers.aio import run


class CountingTriton:
    """Triton's index with no Trident model in it, counting the reads."""

    def __init__(self) -> None:
        self.reads = 0

    async def ready_models(self) -> dict[str, int]:
        self.reads += 1
        return {"not-a-slug": 1}

    async def model_config(self, name: str) -> dict[str, Any]:
        raise AssertionError("no Trident model to configure")


def test_the_first_readiness_check_reads_the_index_once_and_later_ones_do_not() -> None:
    triton = CountingTriton()
    catalog = Catalog(triton, refresh_s=60)  # type: ignore[arg-type]

    async def checks() -> None:
        await catalog.ensure_read()
        await catalog.ensure_read()

    run(checks())
    assert triton.reads == 1 and catalog.models == []
