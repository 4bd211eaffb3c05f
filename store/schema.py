"""The store's tables, one `MetaData` in one database, and bringing an existing database up to them.

`create_all` only adds missing tables, so columns added since a database was made (key names,
scopes, expiry, last use) are added here with `ALTER TABLE ... ADD COLUMN`, inside the same
transaction and, on PostgreSQL, under the same advisory lock: replicas starting together on an
older database migrate it once. The server secret that signs browser tokens is generated there
too, so every replica signs with the same one.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa

# held while creating the schema on PostgreSQL, so replicas starting together do not race on DDL
SCHEMA_LOCK_ID = 0x7472696465
TOKEN_SECRET = "token_secret"  # noqa: S105 (the row's name, not a secret)

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("plan", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(8), primary_key=True),
    sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    # added after the first release: `_add_missing_columns` brings older databases up to these
    sa.Column("name", sa.String(64), nullable=False, server_default=""),
    sa.Column("scopes", sa.String(128), nullable=False, server_default="predict"),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
)
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False),  # who: "cli:<os user>" or "key:<key id>"
    sa.Column("source", sa.String(128), nullable=False),  # from where: "cli@<host>" or a client IP
    sa.Column("action", sa.String(32), nullable=False, index=True),
    sa.Column("user_name", sa.String(64), nullable=False, index=True),  # whose key or plan
    sa.Column("key_id", sa.String(8), nullable=True),
    sa.Column("detail", sa.String(256), nullable=False, server_default=""),
)
usage_hourly = sa.Table(
    "usage_hourly",
    metadata,
    sa.Column("user_name", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("hour", sa.String(13), primary_key=True),  # YYYY-MM-DDTHH, UTC
    sa.Column("requests", sa.Integer, nullable=False),
)
server_secrets = sa.Table(
    "server_secrets",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
)
# deployments (`store.deployments`): the rows, their per-minute counts and recent log lines
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),  # the URL's deployment part
    sa.Column("display_name", sa.String(128), nullable=False),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),  # the exported version it serves
    sa.Column("previous", sa.String(200), nullable=True),  # "project/model@version" before the last replace
    sa.Column("triton_name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_message", sa.String(512), nullable=False, server_default=""),
    sa.Column("instances", sa.Integer, nullable=False),
    sa.Column("memory_gi", sa.Integer, nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column(
        "rate_limit", sa.Integer, nullable=True
    ),  # requests per minute to the endpoint; None: only plans
    sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("owner", "name"),
)
deployment_minutes = sa.Table(
    "deployment_minutes",
    metadata,
    sa.Column("deployment_id", sa.String(32), primary_key=True),
    sa.Column("minute", sa.String(16), primary_key=True),  # YYYY-MM-DDTHH:MM, UTC
    sa.Column("writer", sa.String(32), primary_key=True),  # the process that counted them
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("latency_ms_sum", sa.Float, nullable=False),
    sa.Column("buckets", sa.Text, nullable=False),  # JSON counts per LATENCY_BUCKETS_MS bound, then +Inf
)
deployment_logs = sa.Table(
    "deployment_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),  # one JSON line
    sa.Column("method", sa.String(8), nullable=True),
    sa.Column("url", sa.String(512), nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=True),
)
# camera streams (`store.streams`): each stream's definition, what its runner last said, and the
# lease that makes one process run it (`lease_owner` until `lease_until`)
streams = sa.Table(
    "streams",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("key_id", sa.String(8), nullable=False, index=True),  # the key that created it
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),  # the slug
    sa.Column("source", sa.Text, nullable=False),  # may hold credentials: never logged nor answered
    sa.Column("options", sa.Text, nullable=False),  # the predict options, JSON
    sa.Column("max_fps", sa.Float, nullable=False),
    sa.Column("format", sa.String(16), nullable=False),  # the events' contract
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.String(512), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    # added after the first release of streams (`_add_missing_columns`): where each processed
    # frame's event is POSTed, and the HMAC key that signs it (shown once, at creation; the runner
    # needs it, so it is kept as is, like a source URL's credentials: never logged nor answered)
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("webhook_secret", sa.String(64), nullable=True),
)

# weights brought through the API (`store.uploads`): a user's projects and models, the signed
# upload sessions that carry a checkpoint's bytes, and the export jobs `trident worker` runs
projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("visibility", sa.String(8), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("owner", "project"),
)
user_models = sa.Table(
    "user_models",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("task", sa.String(16), nullable=True),
    sa.Column("checkpoint", sa.String(512), nullable=True),  # the accepted .pt, outside the repository
    sa.Column("checkpoint_name", sa.String(256), nullable=False, server_default=""),
    sa.Column("checkpoint_bytes", sa.BigInteger, nullable=True),
    sa.Column("checkpoint_sha256", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("owner", "project", "model"),
)
uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # the SDK's sessionId
    sa.Column("model_id", sa.String(32), nullable=False, index=True),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),  # the URL's secret, hashed like keys
    sa.Column("filename", sa.String(256), nullable=False),
    sa.Column("total_bytes", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open, receiving, received, completed, failed
    sa.Column("received_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("md5", sa.String(32), nullable=True),
    sa.Column("error", sa.String(512), nullable=False, server_default=""),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
export_jobs = sa.Table(
    "export_jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model_id", sa.String(32), nullable=False, index=True),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column(
        "status", sa.String(16), nullable=False, index=True
    ),  # queued running completed failed cancelled
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("progress", sa.Integer, nullable=False, server_default="0"),  # percent
    sa.Column("step", sa.String(64), nullable=False, server_default=""),
    sa.Column("error", sa.String(1024), nullable=False, server_default=""),
    sa.Column("parity", sa.Text, nullable=False, server_default="{}"),  # the gate's figures, JSON
    sa.Column("version", sa.Integer, nullable=True),  # the published Triton version
    sa.Column("file", sa.String(512), nullable=True),  # the exported file, in the repository
    sa.Column("file_bytes", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
)


def _add_missing_columns(db: sa.Connection) -> None:
    for table in (api_keys, streams):
        _add_columns(db, table)


def _add_columns(db: sa.Connection, table: sa.Table) -> None:
    present = {c["name"] for c in sa.inspect(db).get_columns(table.name)}
    for column in table.columns:
        if column.name in present:
            continue
        kind = column.type.compile(dialect=db.dialect)
        default = f" DEFAULT '{column.server_default.arg}'" if column.server_default is not None else ""  # type: ignore[attr-defined]
        null = " NOT NULL" if not column.nullable else ""
        db.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{default}{null}"))


def _ensure_secret(db: sa.Connection) -> None:
    if db.execute(sa.select(server_secrets.c.name).where(server_secrets.c.name == TOKEN_SECRET)).first():
        return
    db.execute(server_secrets.insert().values(name=TOKEN_SECRET, value=secrets.token_hex(32)))


def create_schema(engine: sa.Engine) -> None:
    """Create missing tables and columns and the token secret. On PostgreSQL a transaction-scoped
    advisory lock serialises this across replicas (its DDL is transactional, so the next holder
    sees the tables and skips them)."""
    with engine.begin() as db:
        if db.dialect.name == "postgresql":
            db.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK_ID})
        metadata.create_all(db, checkfirst=True)
        _add_missing_columns(db)
        _ensure_secret(db)
