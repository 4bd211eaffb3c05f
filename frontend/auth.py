"""Bearer API keys. For now the accepted keys come from settings (`TRIDENT_API_KEYS`)."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from frontend.errors import Unauthorized


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
    return token.strip()


def authenticate(request: Request, keys: frozenset[str]) -> None:
    """Raise `Unauthorized` unless the Bearer token is one of `keys` (constant-time compare)."""
    token = bearer_token(request).encode()
    matched = False
    for key in keys:  # no early exit: timing does not tell which key nearly matched
        matched |= hmac.compare_digest(token, key.encode())
    if not matched:
        raise Unauthorized("the API key is not valid")
