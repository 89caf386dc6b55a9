"""Protocol set-ups shared by the RFC-named tests: a mini-program with a grant and a signed-in
person ready for the code flow (``flow``), tokens already issued (``issued``), introspection.

Registered as a pytest plugin in tests/conftest.py, so its fixtures are there for every test.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import oauth
from tests.support.client import basic
from tests.support.factories import make_app, make_grant, make_user, raw_app, raw_grant, raw_secret
from tests.support.oauth import REDIRECT
from tests.support.signin import session_sign_in


def setup_authorize(
    client: Any, store: Any, settings: Any, grant: bool = True, registered: bool = True, **app: Any
):
    """An app, a person signed in (session only) and, unless ``grant=False``, their grant.

    ``registered=False`` writes a confidential app raw, for what the registry refuses on purpose (an
    org_app asking for ``openid``, a fragment in a redirect URI): the endpoint must refuse it too.
    """
    if registered:
        cid, secret = make_app(store, settings, **app)
    else:
        cid = raw_app(store, **{"client_type": "confidential", "redirect_uris": [REDIRECT], **app})
        secret = raw_secret(store, settings, cid, None)
    uid = make_user(store, "alice", "pw")
    if grant:  # written raw: some tests hold a grant wider than what the app registers
        raw_grant(store, cid, uid, "openid profile", "user_id nickname avatar")
    session_sign_in(client, uid)
    return cid, secret, uid


def introspect(client: Any, cid: str, secret: str, token: str) -> dict[str, Any]:
    """POST /oauth/introspect as the client; the response is 200 and never cached."""
    resp = client.post("/oauth/introspect", data={"token": token}, headers=basic(cid, secret))
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.get_json()


def is_active(client: Any, cid: str, secret: str, token: str) -> bool:
    resp = client.post("/oauth/introspect", data={"token": token}, headers=basic(cid, secret))
    assert resp.status_code == 200
    return resp.get_json()["active"]


@pytest.fixture
def flow(client, store, settings):
    """The authorization-code flow, ready to run: ``code_form()`` authorizes with PKCE and returns
    the token request's form, ``token(form)`` posts it with the client's credentials."""
    cid, secret = make_app(store, settings)
    uid = make_user(store, "alice", "pw")
    grant_id = make_grant(store, settings, cid, uid, "openid profile", "user_id nickname avatar")
    session_sign_in(client, uid)

    def code_form(**extra):
        return oauth.code_form(client, cid, **extra)

    def token(form, **headers):
        return client.post("/oauth/token", data=form, headers=headers or basic(cid, secret))

    return {
        "cid": cid,
        "secret": secret,
        "uid": uid,
        "grant_id": grant_id,
        "code_form": code_form,
        "token": token,
        "client": client,
    }


@pytest.fixture
def issued(client, store, settings):
    """An access and a refresh token issued through the code flow (with PKCE)."""
    cid, secret = make_app(store, settings)
    uid = make_user(store, "alice", "pw")
    grant_id = make_grant(store, settings, cid, uid, "openid profile", "user_id nickname avatar")
    session_sign_in(client, uid)
    body = client.post(
        "/oauth/token", data=oauth.code_form(client, cid), headers=basic(cid, secret)
    ).get_json()
    return {"cid": cid, "secret": secret, "uid": uid, "grant_id": grant_id, **body}
