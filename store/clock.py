"""Time as the stores keep it: aware UTC datetimes, a settable clock, and the ISO form answers use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import overload

Clock = Callable[[], datetime]  # tests pass their own to live through expiry and minute edges


def utc_now() -> datetime:
    return datetime.now(UTC)


@overload
def utc(moment: datetime) -> datetime: ...
@overload
def utc(moment: None) -> None: ...
def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str:
    """`2026-12-07T10:00:00Z`, as the Platform writes times ("" for none)."""
    return "" if moment is None else utc(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")
