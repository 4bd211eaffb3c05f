"""Short-lived browser tokens: the Test tab trades a pasted key for one, once, and forgets the key.

A token is `trt_<payload>.<signature>`: the payload (base64url JSON) names the key id, its user,
the expiry (Unix seconds) and the scope (`predict`; a token may also watch its key's camera
streams when the key has the `streams` scope, never change them: `frontend.api.streams`); the
signature is HMAC-SHA256 over the payload with the server's secret. Changing any field breaks the
signature. A valid signature is not enough: each use also checks that the key behind it is still
active, so revoking the key ends its tokens at once. No secret of the key is inside.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from core.digests import same_text

PREFIX = "trt_"
LIFETIME_S = 15 * 60
TOKEN_SCOPES = frozenset({"predict", "streams"})  # streams: read only (list, status, preview, events)
MAX_TOKEN_CHARS = 512


@dataclass(frozen=True)
class TokenClaims:
    key_id: str
    user: str
    expires: int  # Unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def issue(secret: bytes, claims: TokenClaims) -> str:
    payload = _b64(orjson.dumps({"k": claims.key_id, "u": claims.user, "x": claims.expires, "s": "predict"}))
    return f"{PREFIX}{payload}.{_sign(secret, payload)}"


def read(secret: bytes, token: str, now: float) -> TokenClaims | None:
    """The claims of an authentic, unexpired token, else None (forged, altered, expired, garbage)."""
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    payload, _, signature = token[len(PREFIX) :].partition(".")
    if not same_text(_sign(secret, payload), signature):
        return None
    try:
        data = orjson.loads(_unb64(payload))
        claims = TokenClaims(str(data["k"]), str(data["u"]), int(data["x"]))
    except (ValueError, KeyError, TypeError):
        return None
    return claims if claims.expires > now else None
