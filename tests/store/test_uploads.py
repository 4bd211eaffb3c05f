"""The upload store: single-use, expiring upload sessions; export jobs taken by one worker each
(on PostgreSQL too, with many workers at once), a dead worker's job taken again once, then failed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from store.keys import KeyStore
from store.uploads import MAX_ATTEMPTS, UploadRefused, UploadStore
from tests.helpers.postgres import Postgres


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> UploadStore:
    return UploadStore(KeyStore(f"sqlite:///{tmp_path / 'keys.db'}").engine, clock)


def queued(store: UploadStore, n: int) -> list[str]:
    store.create_project("alice", "p", "p", "private")
    model = store.create_model("alice", "p", "m", "m", "detect")
    return [store.queue(model.id, "onnx").id for _ in range(n)]


def test_a_taken_model_name_gets_the_next_free_suffix(store: UploadStore) -> None:
    store.create_project("alice", "p", "p", "private")
    names = [store.create_model("alice", "p", "best", "best", "detect").model for _ in range(3)]
    assert names == ["best", "best-2", "best-3"]


def test_an_upload_url_takes_one_put_with_its_own_secret_until_it_expires(
    store: UploadStore, clock: Clock
) -> None:
    store.create_project("alice", "p", "p", "private")
    model = store.create_model("alice", "p", "m", "m", "detect")
    session, token = store.open_upload(model.id, "alice", "best.pt", 10, ttl_s=60)
    with pytest.raises(UploadRefused) as wrong:
        store.take_for_put(session.id, token + "x")
    assert wrong.value.status == 403
    store.take_for_put(session.id, token)
    with pytest.raises(UploadRefused) as again:
        store.take_for_put(session.id, token)
    assert again.value.status == 409 and "used already" in again.value.reason

    late, late_token = store.open_upload(model.id, "alice", "best.pt", 10, ttl_s=60)
    clock.now += timedelta(seconds=59)
    fresh, fresh_token = store.open_upload(model.id, "alice", "best.pt", 10, ttl_s=60)
    clock.now += timedelta(seconds=1)  # exactly at its expiry: refused
    with pytest.raises(UploadRefused) as expired:
        store.take_for_put(late.id, late_token)
    assert expired.value.status == 410 and "expired" in expired.value.reason
    assert store.take_for_put(fresh.id, fresh_token).id == fresh.id  # one second before its own


def test_a_dead_workers_job_is_taken_again_once_then_failed_with_the_reason(
    store: UploadStore, clock: Clock
) -> None:
    (job_id,) = queued(store, 1)
    first = store.claim("w1", lease_s=10)
    assert first is not None and first.id == job_id and first.attempts == 1
    assert store.claim("w2", lease_s=10) is None  # leased: nobody else takes it
    clock.now += timedelta(seconds=10)  # w1 died: its lease ran out
    second = store.claim("w2", lease_s=10)
    assert second is not None and second.id == job_id and second.attempts == MAX_ATTEMPTS
    assert not store.renew(job_id, "w1", 10)  # the dead worker's late word changes nothing
    clock.now += timedelta(seconds=10)
    assert store.claim("w3", lease_s=10) is None
    failed = store.job(job_id)
    assert failed is not None and failed.status == "failed" and "stopped mid-job 2 times" in failed.error


def test_a_live_workers_renewed_lease_keeps_its_job(store: UploadStore, clock: Clock) -> None:
    (job_id,) = queued(store, 1)
    assert store.claim("w1", lease_s=10) is not None
    for _ in range(5):
        clock.now += timedelta(seconds=9)
        assert store.renew(job_id, "w1", 10, 50, "exporting")
        assert store.claim("w2", lease_s=10) is None
    assert store.complete(job_id, "w1", 1, "/x/model.onnx", 5, {"matched": 50})
    done = store.job(job_id)
    assert done is not None and (done.status, done.progress, done.parity) == (
        "completed",
        100,
        {"matched": 50},
    )


def take_all(url: str, name: str, taken: list[str], start: threading.Barrier) -> None:
    store = UploadStore(sa.create_engine(url, pool_size=1))
    start.wait()
    while (job := store.claim(name, lease_s=60)) is not None:
        taken.append(job.id)


@pytest.mark.integration
def test_many_workers_on_one_postgres_never_take_the_same_job(postgres: Postgres) -> None:
    store = UploadStore(KeyStore(postgres.url).engine)
    jobs = queued(store, 200)
    start = threading.Barrier(6)
    taken: list[list[str]] = [[] for _ in range(6)]
    threads = [
        threading.Thread(target=take_all, args=(postgres.url, f"w{i}", taken[i], start)) for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    every = [j for mine in taken for j in mine]
    assert sorted(every) == sorted(jobs)  # each job exactly once
    assert sum(1 for mine in taken if mine) >= 2, [len(m) for m in taken]  # they really competed
    with store.engine.connect() as db:
        owners = dict(db.execute(sa.text("SELECT id, lease_owner FROM export_jobs")).all())
    for i, mine in enumerate(taken):
        assert all(owners[j] == f"w{i}" for j in mine)
