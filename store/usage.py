"""Requests per user, model and hour (UTC), for `GET /api/usage`: counted in memory, written in batches.

A predict adds one to a dictionary (no database write per request); `flush` adds the counts to
`usage_hourly` in one transaction (the app flushes every minute, at shutdown and before answering
a usage call, so a single process's answer is exact; other workers' counts join within a minute).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from store.schema import usage_hourly


@dataclass(frozen=True)
class ModelUsage:
    model: str
    last_day: int  # this hour and the 23 before it
    last_30_days: int  # this hour and the 719 before it


class UsageLog:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._pending: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, user: str, model: str, now: datetime) -> None:
        with self._lock:
            self._pending[(user, model, f"{now:%Y-%m-%dT%H}")] += 1

    def flush(self) -> None:
        """Add the pending counts to the database; on failure they stay pending for the next try."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        if not pending:
            return
        try:
            with self._engine.begin() as db:
                for (user, model, hour), n in pending.items():
                    where = (
                        usage_hourly.c.user_name == user,
                        usage_hourly.c.model == model,
                        usage_hourly.c.hour == hour,
                    )
                    added = db.execute(
                        usage_hourly.update().where(*where).values(requests=usage_hourly.c.requests + n)
                    )
                    if not added.rowcount:
                        db.execute(
                            usage_hourly.insert().values(user_name=user, model=model, hour=hour, requests=n)
                        )
        except (sa.exc.DBAPIError, sa.exc.TimeoutError):
            with self._lock:
                self._pending.update(pending)

    def per_model(self, user: str, now: datetime) -> list[ModelUsage]:
        day_start = f"{now - timedelta(hours=23):%Y-%m-%dT%H}"
        month_start = f"{now - timedelta(hours=719):%Y-%m-%dT%H}"
        query = (
            sa.select(usage_hourly.c.model, usage_hourly.c.hour, usage_hourly.c.requests)
            .where(usage_hourly.c.user_name == user, usage_hourly.c.hour >= month_start)
            .order_by(usage_hourly.c.model)
        )
        with self._engine.connect() as db:
            rows = db.execute(query).all()
        totals: dict[str, list[int]] = {}
        for model, hour, requests in rows:
            entry = totals.setdefault(model, [0, 0])
            entry[1] += requests
            if hour >= day_start:
                entry[0] += requests
        return [ModelUsage(m, d, t) for m, (d, t) in totals.items()]
