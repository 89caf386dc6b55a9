"""RFC 7009 token revocation: always 200 for the client's own or unknown tokens, a refresh token takes
its chain with it (introspection: test_rfc7662_introspection.py; the helpers: test_tokens_service.py)."""

from __future__ import annotations

from tests.support.client import basic
from tests.support.factories import make_app
from tests.support.flows import introspect


def test_revoke_access_token(client, issued):
    resp = client.post(
        "/oauth/revoke",
        data={"token": issued["access_token"]},
        headers=basic(issued["cid"], issued["secret"]),
    )
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert introspect(client, issued["cid"], issued["secret"], issued["access_token"]) == {"active": False}
    assert introspect(client, issued["cid"], issued["secret"], issued["refresh_token"])["active"] is True


def test_revoke_refresh_token_revokes_its_chain(client, issued):
    resp = client.post(
        "/oauth/revoke",
        data={"token": issued["refresh_token"], "token_type_hint": "refresh_token"},
        headers=basic(issued["cid"], issued["secret"]),
    )
    assert resp.status_code == 200
    assert introspect(client, issued["cid"], issued["secret"], issued["access_token"]) == {"active": False}
    refresh = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        headers=basic(issued["cid"], issued["secret"]),
    )
    assert refresh.get_json()["error"] == "invalid_grant"


def test_revoke_unknown_token_is_200(client, issued):
    resp = client.post(
        "/oauth/revoke", data={"token": "whatever"}, headers=basic(issued["cid"], issued["secret"])
    )
    assert resp.status_code == 200


def test_revoke_other_clients_token_is_200_and_does_nothing(client, store, settings, issued):
    other, other_secret = make_app(store, settings)
    resp = client.post(
        "/oauth/revoke", data={"token": issued["access_token"]}, headers=basic(other, other_secret)
    )
    assert resp.status_code == 200
    assert introspect(client, issued["cid"], issued["secret"], issued["access_token"])["active"] is True


def test_revoke_bad_hint_and_missing_token(client, issued):
    auth = basic(issued["cid"], issued["secret"])
    resp = client.post("/oauth/revoke", data={"token": "x", "token_type_hint": "id_token"}, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "unsupported_token_type"
    resp = client.post("/oauth/revoke", data={}, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_request"
