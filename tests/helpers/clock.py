"""A clock the test sets: the key store and the token signer read the time through it, so expiry
is tested by moving `now`, never by sleeping."""

from __future__ import annotations

from datetime import UTC, datetime

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now
