"""Who is calling: the Bearer key, checked against the key store, and what that caller may see.

A malformed key or one with a bad checksum is refused before any lookup. Unknown and revoked
keys get the same answer, in the same time. Keys are never logged: only their public key id.
A refused well-formed key counts against the caller's IP (`FailedAuthLimiter`). A key store that
cannot be reached is a 503 with Retry-After: the key is neither accepted nor refused unchecked.
"""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request

from frontend.catalog import Catalog, ServedModel
from frontend.errors import ModelNotFound, ServiceUnavailable, Unauthorized
from frontend.ratelimit import FailedAuthLimiter
from trident.keys import KeyStore, KeyStoreUnavailable, Principal, parse_key
from trident.modelspec import ModelSpec
from trident.slug import InvalidSlugError, Slug

KEY_STORE_RETRY_S = 5


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
    return token.strip()


def client_ip(request: Request) -> str:
    """The peer address (uvicorn rewrites it from X-Forwarded-For for `FORWARDED_ALLOW_IPS` proxies)."""
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, store: KeyStore, failures: FailedAuthLimiter) -> Principal:
    """The caller, or `Unauthorized` (query-string keys are ignored on purpose: they leak into logs).

    Past the per-IP failure limit a refused key gets `RateLimited` instead of `Unauthorized`.
    """
    token = bearer_token(request)
    if parse_key(token) is None:  # garbage: no lookup, no counter, nothing spent
        raise Unauthorized("the API key is not valid", token_presented=True)
    try:
        principal = await anyio.to_thread.run_sync(store.verify, token)
    except KeyStoreUnavailable:
        raise ServiceUnavailable("the key store cannot be reached", retry_after=KEY_STORE_RETRY_S) from None
    if principal is None:
        await failures.failed(client_ip(request))
        raise Unauthorized("the API key is not valid", token_presented=True)
    return principal


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
    served = await catalog.get(slug)
    if not may_see(served.spec, caller):
        raise ModelNotFound(f"no model {slug}")
    return served
