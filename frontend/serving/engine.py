"""The serving engine a worker holds: Triton, its models, the CPU pool and the in-flight slots.

Serving code takes this small object, not the app's `Services`: it needs nothing of keys, plans or
deployments, and a test can build one without a database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from anyio import CapacityLimiter

from frontend.errors import ServiceUnavailable
from frontend.serving.catalog import Catalog, ServedModel
from frontend.serving.triton import Triton
from pipeline.formats import Call

AT_CAPACITY = "the server is at capacity; retry in a moment"


class InFlight:
    """Inferences running in this worker; past `limit`, a predict is refused at once (503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count >= self.limit

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.full:  # again: slots may have filled while this body arrived
            raise ServiceUnavailable(AT_CAPACITY)
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1


@dataclass(frozen=True)
class Engine:
    triton: Triton
    catalog: Catalog
    in_flight: InFlight  # the same one `ShedAtCapacity` reads
    cpu_limiter: CapacityLimiter
    cpu_nice: int  # added to the CPU threads' niceness (`inference.run_cpu`)
    started: float = field(default_factory=time.monotonic)  # for the Platform's `functionTimeAlive`

    def call(self, served: ServedModel, started: float) -> Call:
        """A predict call on `served` that began at `started` (`time.perf_counter()`)."""
        return Call(served.info(), self.started, started)
