"""Scopes, expiry, browser tokens, anonymous access and security headers, in process.

The whole app runs with its lifespan and a SQLite key store whose clock the test moves; nothing
here needs Triton (the routes checked answer before any model is read, or list an empty catalog).
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from frontend.app import create_app
from frontend.deps import DeploymentsCallerDep
from frontend.guards.auth import TOKEN_COOKIE
from store import audit, tokens
from store.keys import KeyStore, new_key
from tests.helpers.clock import START, Clock

PREDICT = "/api/models/alice/p/m/predict"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class App:
    def __init__(self, client: TestClient, store: KeyStore, clock: Clock) -> None:
        self.client, self.store, self.clock = client, store, clock

    def key(self, user: str = "alice", **kwargs: object) -> str:
        return self.store.create_key(user, "free", **kwargs)[0]  # type: ignore[arg-type]


def app_with(tmp_path: Path, **settings: object) -> Iterator[App]:
    clock = Clock()
    database = f"sqlite:///{tmp_path / 'keys.db'}"
    store = KeyStore(database, clock)
    config = Settings(data_dir=tmp_path, database_url=database, triton_grpc_port=_free_port(), **settings)  # type: ignore[arg-type]
    with TestClient(create_app(config, clock)) as client:
        yield App(client, store, clock)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    yield from app_with(tmp_path)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- scopes --------------------------------------------------------------------------------------


def test_a_key_without_predict_gets_403_in_both_contracts(app: App) -> None:
    key = app.key(scopes=["deployments"])
    seed = app.client.post(PREDICT, headers=bearer(key), files={"file": b"x"})
    assert seed.status_code == 403
    assert seed.json() == {
        "success": False,
        "error": {
            "code": "forbidden",
            "message": "Forbidden",
            "detail": "this key lacks the 'predict' scope; its scopes: deployments",
        },
    }
    platform = app.client.post(f"{PREDICT}?format=platform", headers=bearer(key), files={"file": b"x"})
    assert platform.status_code == 403
    assert platform.json() == {
        "error": "Forbidden: this key lacks the 'predict' scope; its scopes: deployments"
    }
    for path in ("/api/models", "/api/models/alice/p", "/api/models/alice/p/m"):
        assert app.client.get(path, headers=bearer(key)).status_code == 403, path
    left = app.client.get("/api/usage", headers=bearer(key)).json()["remaining"]
    assert left["minute"] == 10 and left["day"] == 100  # a 403 spends no quota


def test_the_deployments_scope_guards_the_routes_that_declare_it(tmp_path: Path) -> None:
    """No deployment routes exist yet; the dependency they will declare refuses other keys."""
    database = f"sqlite:///{tmp_path / 'keys.db'}"
    store = KeyStore(database)
    config = Settings(data_dir=tmp_path, database_url=database, triton_grpc_port=_free_port())
    app = create_app(config)

    @app.get("/api/deployments-probe")
    async def probe(caller: DeploymentsCallerDep) -> dict[str, str]:
        return {"user": caller.user}

    with TestClient(app) as client:
        refused = client.get("/api/deployments-probe", headers=bearer(store.create_key("alice", "free")[0]))
        assert refused.status_code == 403 and "'deployments' scope" in refused.json()["error"]
        allowed = store.create_key("alice", "free", scopes=["deployments"])[0]
        assert client.get("/api/deployments-probe", headers=bearer(allowed)).json() == {"user": "alice"}


def test_the_default_scope_predicts_but_may_not_manage_keys(app: App) -> None:
    key = app.key()
    assert app.client.get("/api/models", headers=bearer(key)).status_code == 200
    made = app.client.post("/api/api-keys", headers=bearer(key), json={"name": "ci"})
    assert made.status_code == 403
    assert made.json() == {"error": "Forbidden: this key lacks the 'admin' scope; its scopes: predict"}
    assert app.client.delete(f"/api/api-keys/{key[4:12]}", headers=bearer(key)).status_code == 403


def test_an_admin_key_manages_its_own_users_keys_only(app: App) -> None:
    admin = app.key(scopes=["admin"])
    bobs = app.key("bob")
    made = app.client.post(
        "/api/api-keys",
        headers=bearer(admin),
        json={"name": "ci", "scopes": ["predict"], "expiresInDays": 30},
    )
    assert made.status_code == 201
    new = made.json()
    assert app.store.verify(new["key"]) is not None and new["scopes"] == ["predict"]
    listed = app.client.get("/api/api-keys", headers=bearer(new["key"])).json()["keys"]
    assert {k["keyId"] for k in listed} == {admin[4:12], new["keyId"]}
    assert app.client.delete(f"/api/api-keys/{bobs[4:12]}", headers=bearer(admin)).status_code == 404
    assert app.store.verify(bobs) is not None
    assert app.client.delete(f"/api/api-keys/{new['keyId']}", headers=bearer(admin)).status_code == 200
    assert app.client.get("/api/models", headers=bearer(new["key"])).status_code == 401
    trail = audit.entries(app.store.engine, user="alice", action="key.")
    assert [(e.action, e.key_id, e.actor, e.source) for e in trail[:2]] == [
        ("key.revoke", new["keyId"], f"key:{admin[4:12]}", "testclient"),
        ("key.create", new["keyId"], f"key:{admin[4:12]}", "testclient"),
    ]
    unknown = app.client.post("/api/api-keys", headers=bearer(admin), json={"scopes": ["root"]})
    assert unknown.status_code == 400 and "unknown scope 'root'" in unknown.json()["error"]


def test_api_keys_lists_metadata_of_the_callers_active_keys_and_no_secret(app: App) -> None:
    mine = app.key(name="laptop")
    other = app.key("bob")
    revoked = app.key()
    app.store.revoke(revoked[4:12])
    answer = app.client.get("/api/api-keys", headers=bearer(mine))
    assert answer.status_code == 200
    assert answer.json() == {
        "keys": [
            {
                "keyId": mine[4:12],
                "name": "laptop",
                "keyPrefix": mine[:12],
                "createdAt": "2026-01-01T12:00:00Z",
            }
        ]
    }
    assert mine not in answer.text and mine[12:] not in answer.text and other[4:12] not in answer.text


# --- expiry -------------------------------------------------------------------------------------


def test_an_expired_key_is_refused_exactly_like_an_unknown_one(app: App) -> None:
    key = app.key(expires_in=timedelta(days=30))
    assert app.client.get("/api/models", headers=bearer(key)).status_code == 200
    app.clock.now = START + timedelta(days=30) - timedelta(seconds=1)
    assert app.client.get("/api/models", headers=bearer(key)).status_code == 200
    app.clock.now = START + timedelta(days=30)
    expired = app.client.post(PREDICT, headers=bearer(key), files={"file": b"x"})
    unknown = app.client.post(PREDICT, headers=bearer(new_key()[0]), files={"file": b"x"})
    assert expired.status_code == unknown.status_code == 401
    assert expired.content == unknown.content
    same = ("www-authenticate", "content-type", "content-length")
    assert [expired.headers.get(h) for h in same] == [unknown.headers.get(h) for h in same]
    assert app.client.get("/api/api-keys", headers=bearer(key)).status_code == 401


def test_last_use_is_written_in_one_batch_not_per_request(app: App) -> None:
    key = app.key()
    for _ in range(20):
        assert app.client.get("/api/models", headers=bearer(key)).status_code == 200
    assert app.store.list_keys()[0].last_used_at is None  # nothing written per request
    app.clock.now = START + timedelta(seconds=5)
    app.client.get("/api/models", headers=bearer(key))
    # the app's store (not this test's) noted the use: the shutdown flush writes it
    app.client.__exit__(None, None, None)
    assert app.store.list_keys()[0].last_used_at == START + timedelta(seconds=5)


# --- browser tokens -----------------------------------------------------------------------------


def _token(app: App, key: str) -> str:
    answer = app.client.post("/api/tokens", headers=bearer(key))
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/api", "Max-Age=900"):
        assert attribute.lower() in cookie.lower(), cookie
    assert key not in cookie and key not in answer.text
    token = str(app.client.cookies[TOKEN_COOKIE])
    app.client.cookies.clear()
    return token


def as_token(token: str) -> dict[str, str]:
    return {"Cookie": f"{TOKEN_COOKIE}={token}"}


def test_a_token_works_for_15_minutes_then_401_at_once(app: App) -> None:
    token = _token(app, app.key())
    assert app.client.get("/api/models", headers=as_token(token)).status_code == 200
    app.clock.now = START + timedelta(minutes=15) - timedelta(seconds=1)
    assert app.client.get("/api/models", headers=as_token(token)).status_code == 200
    app.clock.now = START + timedelta(minutes=15)
    assert app.client.get("/api/models", headers=as_token(token)).status_code == 401


def test_revoking_the_key_ends_its_tokens_at_once(app: App) -> None:
    key = app.key()
    token = _token(app, key)
    assert app.client.get("/api/models", headers=as_token(token)).status_code == 200
    app.store.revoke(key[4:12])
    assert app.client.get("/api/models", headers=as_token(token)).status_code == 401


def test_a_token_may_only_predict_whatever_its_key_may_do(app: App) -> None:
    token = _token(app, app.key(scopes=["predict", "admin"]))
    assert app.client.post("/api/api-keys", headers=as_token(token), json={}).status_code == 403
    assert app.client.post("/api/tokens", headers=as_token(token)).status_code == 401  # no token from a token


def _altered(token: str, **changes: object) -> str:
    payload, signature = token[4:].split(".")
    data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    forged = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()
    return f"trt_{forged}.{signature}"


def test_forged_or_altered_tokens_are_401(app: App) -> None:
    alice = app.key()
    app.key("bob")
    token = _token(app, alice)
    later = int((START + timedelta(days=1)).timestamp())
    payload, signature = token[4:].split(".")
    for forged in (
        _altered(token, u="bob"),
        _altered(token, x=later),
        _altered(token, s="admin"),
        f"trt_{payload}.{signature[:-2]}AA",
        f"trt_{payload}",
        "trt_garbage",
        alice,  # the key itself is no token in a cookie
    ):
        answer = app.client.get("/api/models", headers=as_token(forged))
        assert answer.status_code == 401, forged
        assert answer.json()["error"]["message"] == "Unauthorized"
    assert app.client.get("/api/models", headers=as_token(token)).status_code == 200  # the positive control


# --- anonymous access ---------------------------------------------------------------------------


def test_without_an_anonymous_plan_every_call_needs_a_key(app: App) -> None:
    assert app.client.get("/api/models").status_code == 401
    assert app.client.post(PREDICT, files={"file": b"x"}).status_code == 401


def test_with_an_anonymous_plan_a_call_without_key_is_limited_per_ip(tmp_path: Path) -> None:
    plans = {"free": (10, 100), "anon": (2, 5)}
    for app in app_with(tmp_path, anonymous_plan="anon", plans=plans):
        assert app.client.get("/api/models").json() == {"success": True, "models": []}
        answer = app.client.post(PREDICT, files={"file": b"x"})  # admitted, metered; then no Triton here
        assert answer.status_code == 503
        assert answer.headers["X-RateLimit-Limit"] == "2" and answer.headers["X-RateLimit-Remaining"] == "1"
        app.client.post(PREDICT, files={"file": b"x"})
        assert app.client.post(PREDICT, files={"file": b"x"}).status_code == 429
        assert app.client.get("/api/api-keys").status_code == 401  # no account without a key
        assert app.client.get("/api/usage").status_code == 401


# --- usage --------------------------------------------------------------------------------------


def test_usage_shows_the_plan_and_what_is_left(app: App) -> None:
    key = app.key()
    for _ in range(3):
        app.client.post(PREDICT, headers=bearer(key), files={"file": b"x"})  # each spends quota
    answer = app.client.get("/api/usage", headers=bearer(key)).json()
    assert answer["plan"] == {"name": "free", "perMinute": 10, "perDay": 100}
    assert answer["remaining"]["minute"] == 7 and answer["remaining"]["day"] == 97
    other = app.client.get("/api/usage", headers=bearer(app.key("bob"))).json()
    assert other["remaining"]["minute"] == 10


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/models/alice/p/m", "/static/common.js", "/api/models", "/nowhere", "/openapi.json"]
)
def test_every_answer_has_a_strict_policy_and_no_referrer(app: App, path: str) -> None:
    answer = app.client.get(path)
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_the_docs_page_has_no_inline_script(app: App) -> None:
    answer = app.client.get("/docs")
    policy = answer.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in answer.text and 'src="/static/docs.js"' in answer.text


def test_a_token_signed_with_non_ascii_text_is_refused_not_an_error() -> None:
    """A header is decoded as Latin-1, so a forged signature can hold non-ASCII characters, on
    which `hmac.compare_digest` of two strings raises: a refusal, never a 500."""
    for signature in ("\u00e9" * 43, "\u00ff", "abc\u0080"):
        assert tokens.read(b"secret", f"trt_eyJ1IjoiYSJ9.{signature}", 0.0) is None
