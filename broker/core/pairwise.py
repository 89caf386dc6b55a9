"""Pairwise user identifiers (OpenID Connect Core section 8.1).

The id an app receives for a person is an HMAC under ``BROKER_PAIRWISE_KEY``: per (app, person)
for mini-programs, per (app, organization, person) for org apps. Stable across tokens and
restarts, different for every app, and not reversible without the key.
"""

from __future__ import annotations

import hashlib
import hmac


def pairwise_id(key: str, client_id: str, user_id: str, org_id: str | None = None) -> str:
    message = "\x1f".join(("v1", client_id, org_id or "-", user_id)).encode()
    digest = hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
    return f"u_{digest[:32]}"
