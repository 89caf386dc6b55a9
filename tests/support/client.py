"""Credentials on a request: a bearer token (RFC 6750) or a client's HTTP Basic (RFC 6749 2.3.1)."""

from __future__ import annotations

import base64


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}
