"""A key store made before webhooks: `create_schema` adds the streams' webhook columns, its streams
still read (no webhook), and a new one keeps its URL and secret."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from store.schema import create_schema, streams
from store.streams import StreamStore


def test_an_older_streams_table_gains_the_webhook_columns(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    old = [c for c in streams.columns if not c.name.startswith("webhook_")]
    with engine.begin() as db:
        made = (sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in old)
        sa.Table("streams", sa.MetaData(), *made).create(db)
        db.execute(
            sa.text(
                "INSERT INTO streams (id, key_id, user_name, model, source, options, max_fps, format, "
                "paused, status, error, created_at, updated_at) VALUES ('st_old', 'k', 'u', 'a/b/c', "
                "'rtsp://cam/1', '{}', 5, 'seed', 0, 'connecting', '', '2026-12-01 00:00:00', "
                "'2026-12-01 00:00:00')"
            )
        )
    create_schema(engine)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("streams")}
    assert {"webhook_url", "webhook_secret"} <= columns
    store = StreamStore(engine)
    row = store.get("st_old")
    assert row is not None and row.webhook_url is None and row.webhook_secret is None
    new = store.create("k", "u", "a/b/c", "rtsp://cam/2", {}, 5, "seed", 4, "http://hook/x", "whsec_s")
    assert new is not None and (new.webhook_url, new.webhook_secret) == ("http://hook/x", "whsec_s")
