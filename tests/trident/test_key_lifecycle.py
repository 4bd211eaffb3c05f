"""Key scopes, expiry, last use and the audit trail in the key store, and the CLI that drives them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from store import audit
from store.keys import KeyStore
from tests.helpers.clock import START, Clock
from trident.cli import app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> KeyStore:
    return KeyStore(f"sqlite:///{tmp_path / 'keys.db'}", clock)


def test_scopes_default_to_predict_and_unknown_ones_are_refused(store: KeyStore) -> None:
    default = store.verify(store.create_key("alice", "free")[0])
    assert default is not None and default.scopes == {"predict"}
    both = store.verify(store.create_key("alice", "free", scopes=["admin", "deployments"])[0])
    assert both is not None and both.scopes == {"admin", "deployments"}
    with pytest.raises(ValueError, match="unknown scope 'admni'"):
        store.create_key("alice", "free", scopes=["admni"])


def test_a_key_expires_at_its_moment(store: KeyStore, clock: Clock) -> None:
    key, _ = store.create_key("alice", "free", expires_in=timedelta(days=30))
    clock.now = START + timedelta(days=30, seconds=-1)
    assert store.verify(key) is not None
    clock.now = START + timedelta(days=30)
    assert store.verify(key) is None
    assert store.list_keys()[0].expired(clock.now)


def test_last_use_is_one_batched_write(store: KeyStore, clock: Clock) -> None:
    keys = [store.create_key("alice", "free")[0] for _ in range(3)]
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for minute in range(3):
        clock.now = START + timedelta(seconds=minute * 20)
        for key in keys:
            store.verify(key)
    writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert writes == []
    assert store.flush_last_used() == 3
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1  # executemany
    assert {k.last_used_at for k in store.list_keys()} == {START + timedelta(seconds=40)}
    assert store.flush_last_used() == 0


def test_an_older_database_gains_the_new_columns(tmp_path: Path) -> None:
    """A key store made before scopes and expiry: its keys keep working, with the default scope."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(
            sa.text(
                "CREATE TABLE users (name VARCHAR(64) PRIMARY KEY, plan VARCHAR(64), created_at DATETIME)"
            )
        )
        db.execute(
            sa.text(
                "CREATE TABLE api_keys (key_id VARCHAR(8) PRIMARY KEY, user_name VARCHAR(64), "
                "key_hash VARCHAR(64), created_at DATETIME, revoked_at DATETIME)"
            )
        )
    from store.keys import hash_key, new_key

    key, key_id = new_key()
    with engine.begin() as db:
        db.execute(sa.text("INSERT INTO users VALUES ('old', 'free', '2025-01-01 00:00:00')"))
        db.execute(
            sa.text("INSERT INTO api_keys VALUES (:k, 'old', :h, '2025-01-01 00:00:00', NULL)"),
            {"k": key_id, "h": hash_key(key)},
        )
    store = KeyStore(url)
    principal = store.verify(key)
    assert principal is not None and principal.scopes == {"predict"}
    assert store.list_keys()[0].expires_at is None


def test_changes_are_audited_newest_first_without_secrets(store: KeyStore, clock: Clock) -> None:
    cli = audit.Actor("cli:ops", "cli@host")
    key, key_id = store.create_key("alice", "free", scopes=["predict"], actor=cli)
    clock.now += timedelta(minutes=1)
    store.set_scopes(key_id, ["predict", "admin"], actor=cli)
    clock.now += timedelta(minutes=1)
    store.add_user("alice", "pro", actor=cli)
    clock.now += timedelta(minutes=1)
    store.revoke(key_id, actor=audit.Actor.key("abcdefgh", "10.0.0.7"))
    store.create_key("bob", "free", actor=cli)
    entries = audit.entries(store.engine, user="alice")
    assert [(e.action, e.key_id) for e in entries] == [
        ("key.revoke", key_id),
        ("user.plan", None),
        ("key.scopes", key_id),
        ("key.create", key_id),
        ("user.plan", None),  # alice was created with the key
    ]
    assert (
        entries[0].actor == "key:abcdefgh"
        and entries[0].source == "10.0.0.7"
        and entries[0].at == START + timedelta(minutes=3)
    )
    assert entries[1].detail == "plan free -> pro" and entries[2].detail == "scopes predict -> predict,admin"
    assert [e.user for e in audit.entries(store.engine, action="key.create")] == ["bob", "alice"]
    assert len(audit.entries(store.engine, action="key.")) == 4
    assert all(key not in str(e) and key[12:] not in str(e) for e in audit.entries(store.engine))


def test_cli_creates_lists_rescopes_and_audits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIDENT_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    runner = CliRunner()
    made = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--user",
            "alice",
            "--name",
            "ci",
            "--scope",
            "predict",
            "--scope",
            "admin",
            "--expires-in",
            "30d",
        ],
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    store = KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    principal = store.verify(key)
    assert principal is not None and principal.scopes == {"predict", "admin"}
    store.flush_last_used()
    listed = runner.invoke(app, ["keys", "list"]).stdout
    assert " ci " in listed and "scopes predict,admin" in listed and "active" in listed
    assert "expires 20" in listed and "last used 20" in listed and key not in listed
    key_id = key[4:12]
    assert runner.invoke(app, ["keys", "scopes", key_id, "--scope", "deployments"]).exit_code == 0
    assert runner.invoke(app, ["keys", "create", "--user", "a", "--expires-in", "30x"]).exit_code == 1
    assert runner.invoke(app, ["keys", "create", "--user", "a", "--scope", "root"]).exit_code == 1
    trail = runner.invoke(app, ["audit", "--user", "alice"]).stdout.splitlines()
    assert [line.split()[2] for line in trail] == ["key.scopes", "key.create", "user.plan"]
    assert "by cli:" in trail[0] and "from cli@" in trail[0]
    only = runner.invoke(app, ["audit", "--action", "key.scopes"]).stdout.splitlines()
    assert len(only) == 1 and "predict,admin -> deployments" in only[0]
