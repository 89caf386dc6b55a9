"""Shared helpers for the protocol tests: sign-in, PKCE pairs, running the code flow."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

REDIRECT = "https://app.example.com/cb"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_params(client_id: str, challenge: str | None = None, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "st-123",
        "nonce": "n-456",
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def authorize(client: Any, params: dict[str, str]) -> Any:
    """GET /oauth/authorize with ``params``."""
    return client.get("/oauth/authorize", query_string=params)


def get_code(client: Any, client_id: str, challenge: str | None = None, **extra: str) -> str:
    resp = client.get("/oauth/authorize", query_string=authorize_params(client_id, challenge, **extra))
    assert resp.status_code == 302, resp.get_data(as_text=True)
    q = query(resp.headers["Location"])
    assert "code" in q, q
    return q["code"]


def code_form(client: Any, client_id: str, **extra: str) -> dict[str, str]:
    """Authorize with PKCE (S256) and return the token request that redeems the code."""
    verifier, challenge = pkce_pair()
    return {
        "grant_type": "authorization_code",
        "code": get_code(client, client_id, challenge, **extra),
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
