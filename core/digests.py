"""Comparing a secret we computed with text a client sent."""

from __future__ import annotations

import hmac


def same_text(ours: str, theirs: str) -> bool:
    """Constant-time equality of two strings, as UTF-8 bytes: `hmac.compare_digest` raises on a
    non-ASCII `str`, which would turn a client's bad signature or digest into a 500."""
    return hmac.compare_digest(ours.encode(), theirs.encode())
