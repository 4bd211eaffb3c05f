"""Who is calling: the Bearer key, checked against the key store, and what that caller may see.

A malformed key or one with a bad checksum is refused before any lookup. Unknown and revoked
keys get the same answer, in the same time; so do expired ones. Keys are never logged: only their
public key id. A refused well-formed key counts against the caller's IP (`FailedAuthLimiter`). A
key store that cannot be reached is a 503 with Retry-After: the key is neither accepted nor
refused unchecked.

Without an `Authorization` header the Test tab's token cookie is read (see `store.tokens`), and
without that, when `TRIDENT_ANONYMOUS_PLAN` names a plan, the caller is anonymous: public models
only, limited per client IP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from starlette.requests import Request

from core.modelspec import ModelSpec
from core.slug import InvalidSlugError, Slug
from frontend.errors import ModelNotFound, ServiceUnavailable, Unauthorized
from frontend.guards.ratelimit import FailedAuthLimiter
from frontend.serving.catalog import Catalog, ServedModel
from store import tokens
from store.keys import KeyStore, KeyStoreUnavailable, Principal, parse_key

KEY_STORE_RETRY_S = 5
TOKEN_COOKIE = "trident_token"  # noqa: S105 (a cookie name)
ANONYMOUS_PREFIX = "anon:"  # the limiter's key for an anonymous caller: per client IP
T = TypeVar("T")


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
    return token.strip()


def client_ip(request: Request) -> str:
    """The peer address (uvicorn rewrites it from X-Forwarded-For for `FORWARDED_ALLOW_IPS` proxies)."""
    return request.client.host if request.client else "unknown"


async def _in_store(fn: Callable[[str], T], arg: str) -> T:
    try:
        return await anyio.to_thread.run_sync(fn, arg)
    except KeyStoreUnavailable:
        raise ServiceUnavailable("the key store cannot be reached", retry_after=KEY_STORE_RETRY_S) from None


async def authenticate(
    request: Request,
    store: KeyStore,
    failures: FailedAuthLimiter,
    token_secret: bytes,
    anonymous_plan: str = "",
) -> Principal:
    """The caller, or `Unauthorized` (query-string keys are ignored on purpose: they leak into logs).

    Past the per-IP failure limit a refused key gets `RateLimited` instead of `Unauthorized`.
    """
    if "authorization" not in request.headers:
        if cookie := request.cookies.get(TOKEN_COOKIE):
            return await from_token(cookie, store, token_secret)
        if anonymous_plan:
            return Principal(ANONYMOUS_PREFIX + client_ip(request), "", anonymous_plan, anonymous=True)
    token = bearer_token(request)
    if token.startswith(tokens.PREFIX):
        return await from_token(token, store, token_secret)
    if parse_key(token) is None:  # garbage: no lookup, no counter, nothing spent
        raise Unauthorized("the API key is not valid", token_presented=True)
    # a key verified a moment ago is answered from the cache, on the loop (`store.keycache`)
    principal = store.verify_cached(token) or await _in_store(store.verify, token)
    if principal is None:
        await failures.failed(client_ip(request))
        raise Unauthorized("the API key is not valid", token_presented=True)
    return principal


async def from_token(token: str, store: KeyStore, secret: bytes) -> Principal:
    """The caller behind a browser token: authentic, unexpired, and its key still active and still
    its user's; it may only predict (and watch the key's streams), whatever else the key may do."""
    claims = tokens.read(secret, token, store.clock().timestamp())
    if claims is None:
        raise Unauthorized("the token is not valid or has expired", token_presented=True)
    principal = await _in_store(store.principal, claims.key_id)
    if principal is None or principal.user != claims.user:
        raise Unauthorized("the token is not valid or has expired", token_presented=True)
    return Principal(
        principal.key_id,
        principal.user,
        principal.plan,
        principal.scopes & tokens.TOKEN_SCOPES,
        via_token=True,
    )


def may_see(spec: ModelSpec, principal: Principal) -> bool:
    """A key sees its own models and public ones."""
    return spec.visibility == "public" or spec.owner == principal.user


async def visible_model(
    catalog: Catalog, caller: Principal, owner: str, project: str, model: str
) -> ServedModel:
    """The model the slug names, if this caller may see it; anything else is indistinguishable
    from missing (404)."""
    try:
        slug = Slug.from_parts(owner, project, model)
    except InvalidSlugError:
        raise ModelNotFound(f"no model {owner}/{project}/{model}") from None
    try:
        served = await catalog.get(slug)
        if not may_see(served.spec, caller):
            raise ModelNotFound(f"no model {slug}")
    except ModelNotFound:
        if caller.anonymous:  # private and missing alike: a key might see it
            raise Unauthorized("this model needs an API key: send 'Authorization: Bearer <key>'") from None
        raise
    return served
