"""Garbage credentials cost nothing (reliability Part C, case 13): spies on the database and Redis.

The whole app runs in-process (lifespan included) with a key store in SQLite and Redis configured
but unreachable; nothing here needs Triton. Every SQL statement the app executes and every Redis
command it tries is recorded, so "refused before any lookup" is observed, not assumed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from redis.asyncio.client import Redis

from core.settings import Settings
from frontend.app import create_app
from store.keys import KeyStore, new_key

PREDICT = "/api/models/test/coco/yolo11n/predict"
App = tuple[TestClient, "Spies", str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Spies:
    def __init__(self) -> None:
        self.sql: list[str] = []
        self.redis: list[tuple[Any, ...]] = []

    def reset(self) -> None:
        self.sql.clear()
        self.redis.clear()


@pytest.fixture
def app_and_spies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    spies = Spies()
    database = f"sqlite:///{tmp_path / 'keys.db'}"
    valid, _ = KeyStore(database).create_key("alice", "free")
    settings = Settings(
        data_dir=tmp_path,
        database_url=database,
        redis_url=f"redis://127.0.0.1:{_free_port()}/0",  # nothing listens: a call would be recorded
        triton_grpc_port=_free_port(),
        streams_run=False,  # the stream runner's lease renewals are SQL of its own, not the request's
    )

    def record_sql(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        spies.sql.append(statement)

    original = Redis.execute_command

    async def record_redis(self: Redis, *args: Any, **kwargs: Any) -> Any:
        spies.redis.append(args)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Redis, "execute_command", record_redis)
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record_sql)
    try:
        with TestClient(create_app(settings)) as client:
            spies.reset()  # the lifespan's CREATE TABLE checks are not requests
            yield client, spies, valid
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record_sql)


def _bad_checksum(key: str) -> str:
    return key[:-1] + ("A" if key[-1] != "A" else "B")


@pytest.mark.parametrize(
    ("header", "challenge"),
    [
        (None, "Bearer"),
        ("Bearer", "Bearer"),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer not-a-key", 'Bearer error="invalid_token"'),
        ("Bearer {bad_checksum}", 'Bearer error="invalid_token"'),
    ],
)
def test_garbage_credentials_cause_no_database_or_redis_call(
    app_and_spies: App, header: str | None, challenge: str
) -> None:
    client, spies, valid = app_and_spies
    headers = {} if header is None else {"Authorization": header.format(bad_checksum=_bad_checksum(valid))}
    r = client.post(PREDICT, headers=headers, files={"file": ("a.png", b"x")})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Unauthorized"
    assert r.headers["WWW-Authenticate"] == challenge
    assert spies.sql == [] and spies.redis == []


def test_a_well_formed_unknown_key_is_looked_up_and_counted(app_and_spies: App) -> None:
    """The positive control: the spies do see calls, so their silence above means something. With
    Redis down the failure cannot be counted and the caller still gets the 401 it earned."""
    client, spies, _ = app_and_spies
    r = client.post(PREDICT, headers={"Authorization": f"Bearer {new_key()[0]}"}, files={"file": b"x"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert len(spies.sql) == 1 and "api_keys" in spies.sql[0]
    assert spies.redis, "the failed-auth counter was not consulted"


def test_a_valid_key_is_looked_up_once_then_meets_the_limiter(app_and_spies: App) -> None:
    """Redis is down: the valid key passes auth (one lookup) and the limiter fails closed (503)."""
    client, spies, valid = app_and_spies
    r = client.post(PREDICT, headers={"Authorization": f"Bearer {valid}"}, files={"file": b"x"})
    assert r.status_code == 503 and r.json()["error"]["message"] == "Service unavailable"
    assert len(spies.sql) == 1
    assert spies.redis
