"""The deployments' numbers and lines in the key store's database: what the metrics and logs
routes read (the routes themselves run against the real stack in tests/integration)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from store.deployments import (
    LATENCY_BUCKETS_MS,
    DeploymentStore,
    LogLine,
    Telemetry,
    bucket_index,
    percentile,
)

NOW = datetime(2026, 1, 2, 12, 30, 15, tzinfo=UTC)


def telemetry(max_lines: int = 100) -> Telemetry:
    engine = sa.create_engine("sqlite://")
    DeploymentStore(engine)
    return Telemetry(engine, max_lines)


def test_counts_survive_several_flushes_and_land_in_their_range() -> None:
    t = telemetry()
    latencies = [random.Random(i).uniform(20, 400) for i in range(200)]
    for i, ms in enumerate(latencies):
        t.request("d1", NOW - timedelta(minutes=i % 90), 200 if i % 10 else 503, ms)
        if i % 37 == 0:
            t.flush()  # the same minute merged across flushes
    t.request("other", NOW, 200, 5.0)
    t.flush()
    hour = t.summary("d1", "1h", NOW)["summary"]
    day = t.summary("d1", "24h", NOW)
    assert day["summary"]["totalRequests"] == 200 and day["summary"]["errorCount"] == 20
    assert sum(p["value"] for p in day["timeSeries"]["requests"]) == 200
    assert hour["totalRequests"] == sum(1 for i in range(200) if i % 90 < 60)
    exact = sorted(latencies)[99]
    upper = next(b for b in LATENCY_BUCKETS_MS if exact <= b)
    lower = max(b for b in LATENCY_BUCKETS_MS if b < exact)
    assert lower <= day["summary"]["p50LatencyMs"] <= upper


def test_percentile_interpolates_inside_the_bucket() -> None:
    buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    buckets[bucket_index(60)] = 10  # all in (50, 75]
    assert 50 <= percentile(buckets, 0.5) <= 75
    assert percentile([0] * len(buckets), 0.5) == 0.0


def test_log_lines_are_bounded_per_deployment_and_filtered_by_severity() -> None:
    t = telemetry(max_lines=50)
    for i in range(120):
        t.log(LogLine("d1", NOW, "ERROR" if i % 4 == 0 else "INFO", f'{{"n": {i}}}'))
        t.log(LogLine("d2", NOW, "INFO", "{}"))
        if i % 30 == 29:
            t.flush()
    lines = t.lines("d1", [], 1000)
    assert [line.message for line in lines] == [f'{{"n": {i}}}' for i in range(119, 69, -1)]  # newest 50
    assert len(t.lines("d2", [], 1000)) == 50
    errors = t.lines("d1", ["ERROR"], 1000)
    assert errors and {line.severity for line in errors} == {"ERROR"}
