"""Who is calling: the Bearer key, checked against the key store, and what that caller may see.

A malformed key or one with a bad checksum is refused before any lookup. Unknown and revoked
keys get the same answer, in the same time. Keys are never logged: only their public key id.
A refused well-formed key counts against the caller's IP (`FailedAuthLimiter`).
"""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request

from frontend.errors import ModelNotFound, Unauthorized
from frontend.ratelimit import FailedAuthLimiter
from trident.keys import KeyStore, Principal, parse_key
from trident.modelspec import ModelSpec


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
    principal = await anyio.to_thread.run_sync(store.verify, token)
    if principal is None:
        await failures.failed(client_ip(request))
        raise Unauthorized("the API key is not valid", token_presented=True)
    return principal


def ensure_visible(spec: ModelSpec, principal: Principal, slug: str) -> None:
    """A key sees its own models and public ones; anything else is indistinguishable from missing."""
    if spec.visibility != "public" and spec.owner != principal.user:
        raise ModelNotFound(f"no model {slug}")
