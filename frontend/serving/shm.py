"""Input tensors through system shared memory, when the frontend and Triton share a host.

A few regions (`/dev/shm/trident-<pid>-<token>-<i>`) are created on demand and registered with
Triton once; each carries one request's input at a time and goes back to the pool after the call.
A request that needs more than any free region holds gets one that fits (a new region while the
pool has room, else a free one grown and registered again); when every region is busy and the pool
is full the request simply goes over gRPC.

Nothing here speaks gRPC: registering is the caller's `register` (`frontend.serving.triton`; it must
replace a registration of the same name), which raises `Transient` when Triton is only unreachable
right now (the request fails anyway; shared memory stays on) and anything else when Triton refuses
the region, e.g. because it runs in another container without this host's `/dev/shm`: then shared
memory is off for good, with one warning, and every request goes over gRPC.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tritonclient.utils import shared_memory as shm

log = logging.getLogger("trident.frontend")

PREFIX = "trident-"  # every segment this module creates is /dev/shm/trident-<pid>-...
MIN_REGION_BYTES = 640 * 640 * 3  # a 640 px square uint8 image; larger inputs grow a region
ALIGN = 64  # tensors start on a cache line inside a region


class Transient(Exception):
    """Triton could not be asked right now (down, restarting): not a reason to give up on shared memory."""


def aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


@dataclass
class Region:
    name: str  # Triton's name for it, and the key without its leading slash
    byte_size: int
    handle: Any = None  # tritonclient's SharedMemoryRegion
    registered: bool = False
    busy: bool = False

    @property
    def key(self) -> str:
        return f"/{self.name}"

    def write(self, arrays: list[NDArray[Any]]) -> list[int]:
        """Copy `arrays` in one after the other (each aligned); returns their offsets."""
        offsets, offset = [], 0
        for array in arrays:
            shm.set_shared_memory_region(self.handle, [np.ascontiguousarray(array)], offset=offset)
            offsets.append(offset)
            offset += aligned(array.nbytes)
        return offsets


Register = Callable[[Region], Awaitable[None]]
Unregister = Callable[[Region], Awaitable[None]]


class RegionPool:
    """At most `max_regions` regions, each lent to one request at a time (one event loop only)."""

    def __init__(
        self,
        register: Register,
        unregister: Unregister,
        max_regions: int = 8,
        min_bytes: int = MIN_REGION_BYTES,
    ) -> None:
        self._register, self._unregister = register, unregister
        self._max, self._min_bytes = max_regions, min_bytes
        self._stem = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.regions: list[Region] = []
        self.enabled = True

    async def acquire(self, nbytes: int) -> Region | None:
        """A registered region of at least `nbytes`, now busy; None: use gRPC for this request."""
        if not self.enabled:
            return None
        free = [r for r in self.regions if not r.busy]
        fitting = [r for r in free if r.byte_size >= nbytes]
        if fitting:
            region = min(fitting, key=lambda r: r.byte_size)
        elif len(self.regions) < self._max:
            region = Region(f"{self._stem}-{len(self.regions)}", 0)
            self.regions.append(region)
        elif free:
            region = max(free, key=lambda r: r.byte_size)  # grown below
        else:
            return None  # every region is carrying a request
        region.busy = True
        try:
            await self._ready(region, nbytes)
        except Transient:
            region.busy = False
            return None
        except Exception as exc:
            region.busy = False
            self._give_up(exc)
            return None
        except BaseException:  # cancelled mid-registration: register it afresh next time
            region.busy, region.registered = False, False
            raise
        return region

    def release(self, region: Region) -> None:
        region.busy = False

    def forget_registrations(self) -> None:
        """Triton no longer knows our regions (it restarted): register each again when next used."""
        for region in self.regions:
            region.registered = False

    async def close(self) -> None:
        """Unregister every region from Triton (best effort) and unlink every segment."""
        self.enabled = False
        for region in self.regions:
            if region.registered:
                try:
                    await self._unregister(region)
                except Exception as exc:  # Triton gone: it forgets them anyway
                    log.debug("could not unregister %s: %s", region.name, exc)
            self._destroy(region)
        self.regions.clear()

    async def _ready(self, region: Region, nbytes: int) -> None:
        """Make `region` at least `nbytes` big and registered."""
        if region.handle is not None and region.byte_size < nbytes:
            if region.registered:
                await self._unregister(region)
            self._destroy(region)
        if region.handle is None:
            size = max(self._min_bytes, aligned(nbytes))
            region.handle = shm.create_shared_memory_region(region.name, region.key, size, create_only=True)
            region.byte_size = size
        if not region.registered:
            await self._register(region)
            region.registered = True

    def _destroy(self, region: Region) -> None:
        if region.handle is not None:
            shm.destroy_shared_memory_region(region.handle)
        region.handle, region.byte_size, region.registered = None, 0, False

    def _give_up(self, exc: Exception) -> None:
        log.warning(
            "shared memory with Triton is off from now on (%s: %s); inputs go over gRPC",
            type(exc).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "no detail",
        )
        self.enabled = False
        for region in self.regions:
            if not region.busy:
                self._destroy(region)
        self.regions = [r for r in self.regions if r.busy]  # in flight: closed by close()
