"""Load shedding: a bounded number of inferences per worker; past it, 503 at once.

An unbounded queue only turns overload into timeouts for everyone; refusing fast lets clients
(and load balancers) retry elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from frontend.errors import ServiceUnavailable


class InFlight:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def refuse_when_full(self) -> None:
        """Checked before the body is read, so a refusal costs no upload and no form parsing."""
        if self.count >= self.limit:
            raise ServiceUnavailable("the server is at capacity; retry in a moment")

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.refuse_when_full()  # again: slots may have filled while this body arrived
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
