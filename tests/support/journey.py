"""A short journey through a running demo broker over HTTP: a person signs in to the mini program
(code + PKCE) and an org app reads its members. Each step discloses data, so the ledger grows.

Used by the backup/restore and upgrade tests, and by tests/fixtures/release-0.1.0/make_fixture.py
to write the previous release's data the same way.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from tests.support.demo import sign_in_and_consent


def person_tokens(base: str, creds: dict[str, Any], username: str = "bob") -> dict[str, str]:
    """``username`` signs in to the mini program; its tokens and the pairwise id it sees."""
    app = creds["apps"]["mini_program"]
    redirect_uri = app["redirect_uris"][0]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": app["client_id"],
            "redirect_uri": redirect_uri,
            "scope": "openid profile",
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    final = sign_in_and_consent(
        requests.Session(),
        f"{base}/oauth/authorize?{query}",
        redirect_uri,
        creds["users"][username],
        username,
    )
    code = parse_qs(urlsplit(final).query)["code"][0]
    token = requests.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": app["client_id"],
            "code_verifier": verifier,
        },
        timeout=10,
    )
    assert token.status_code == 200, token.text
    body = token.json()
    me = requests.get(
        f"{base}/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10
    )
    assert me.status_code == 200, me.text
    return {
        "access_token": body["access_token"],
        "refresh_token": body["refresh_token"],
        "sub": me.json()["user_id"],
    }


def org_token(base: str, creds: dict[str, Any], org: str = "acme") -> str:
    """The org app's client_credentials token for ``org``, used once on the members API."""
    app, org_id = creds["apps"]["org_app"], creds["orgs"][org]["id"]
    token = requests.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials", "org_id": org_id},
        auth=(app["client_id"], app["client_secret"]),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    access = str(token.json()["access_token"])
    members = requests.get(
        f"{base}/v1/orgs/{org_id}/members", headers={"Authorization": f"Bearer {access}"}, timeout=10
    )
    assert members.status_code == 200, members.text
    return access
