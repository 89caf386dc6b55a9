"""Keyed hashes for high-entropy secrets (tokens, codes, client secrets): DESIGN invariant 5.

These secrets are random (>= 256 bits), so a keyed HMAC is the right tool: a Redis dump yields
nothing usable without ``BROKER_TOKEN_HASH_KEY``, and lookups stay O(1). Passwords, which are
low-entropy, use argon2 instead (see ``broker.directory.service``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def keyed_hash(key: str, secret: str) -> str:
    return hmac.new(key.encode(), secret.encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """A random secret with a type prefix, e.g. ``brk_at_...``, so secret scanners can spot leaks."""
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"
