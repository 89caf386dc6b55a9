"""RFC 7009 revocation and RFC 7662 introspection, and the token service's revocation helpers."""

from __future__ import annotations

from broker.core import ids
from broker.storage import keys
from broker.tokens import service as tokens
from tests.support.client import basic
from tests.support.factories import make_app, raw_installation
from tests.support.flows import introspect


def test_introspect_active_token(client, issued, settings):
    body = introspect(client, issued["cid"], issued["secret"], issued["access_token"])
    assert body["active"] is True
    assert body["client_id"] == issued["cid"]
    assert body["scope"] == "openid profile"
    assert body["iss"] == settings.issuer
    assert body["sub"].startswith("u_")
    assert body["sub"] != issued["uid"]


def test_introspect_someone_elses_token_is_inactive(client, store, settings, issued):
    other, other_secret = make_app(store, settings)
    assert introspect(client, other, other_secret, issued["access_token"]) == {"active": False}


def test_introspect_garbage_is_inactive(client, issued):
    for token in ("nope", "brk_at_app_0000000000000000.xxx", issued["access_token"] + "x"):
        assert introspect(client, issued["cid"], issued["secret"], token) == {"active": False}


def test_introspect_requires_client_authentication(client, issued):
    resp = client.post("/oauth/introspect", data={"token": issued["access_token"]})
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in resp.headers


def test_introspect_reflects_scope_shrink_and_app_suspension(client, store, issued):
    store.redis.hset(keys.grant(issued["cid"], issued["uid"]), "scopes", "openid")
    assert introspect(client, issued["cid"], issued["secret"], issued["access_token"])["scope"] == "openid"
    store.redis.hset(keys.app(issued["cid"]), "status", "suspended")
    info = tokens.lookup_access_token(
        store, client.application.extensions["broker.settings"].token_hash_key, issued["access_token"]
    )
    assert info is None


def test_introspect_regranted_grant_with_new_id_is_inactive(client, store, issued):
    store.redis.hset(keys.grant(issued["cid"], issued["uid"]), "id", "gr_ffffffffffffffff")
    assert introspect(client, issued["cid"], issued["secret"], issued["access_token"]) == {"active": False}


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


def test_revoke_grant_tokens_helper(client, store, issued):
    n = tokens.revoke_grant_tokens(store, issued["cid"], issued["grant_id"])
    assert n == 2
    assert introspect(client, issued["cid"], issued["secret"], issued["access_token"]) == {"active": False}
    assert not store.redis.exists(keys.grant_tokens(issued["cid"], issued["grant_id"]))


def test_revoke_all_app_tokens_helper(client, store, settings, issued):
    raw_installation(store, issued["cid"], "org_aaaaaaaaaaaaaaaa", "org.members.read")
    n = tokens.revoke_all_app_tokens(store, issued["cid"])
    assert n == 2
    assert introspect(client, issued["cid"], issued["secret"], issued["access_token"]) == {"active": False}
    assert introspect(client, issued["cid"], issued["secret"], issued["refresh_token"]) == {"active": False}


def test_lookup_effective_scopes(store, settings, issued):
    info = tokens.lookup_access_token(store, settings.token_hash_key, issued["access_token"])
    assert info is not None
    assert info.kind == "grant"
    assert info.subject == issued["uid"]
    assert info.effective_scopes == ("openid", "profile")
    store.redis.hset(keys.grant(issued["cid"], issued["uid"]), "scopes", "profile")
    info = tokens.lookup_access_token(store, settings.token_hash_key, issued["access_token"])
    assert info is not None and info.effective_scopes == ("profile",)
    store.redis.delete(keys.grant(issued["cid"], issued["uid"]))
    assert tokens.lookup_access_token(store, settings.token_hash_key, issued["access_token"]) is None


def test_client_of_rejects_malformed_tokens():
    good = ids.new_token(ids.ACCESS_PREFIX, "app_0123456789abcdef")
    assert ids.client_of(good, ids.ACCESS_PREFIX) == "app_0123456789abcdef"
    assert ids.client_of(good, ids.REFRESH_PREFIX) is None
    for bad in ("", "brk_at_app_x.y", "brk_at_app_0123456789abcdef", "brk_at_app_0123456789ABCDEF.abc"):
        assert ids.client_of(bad, ids.ACCESS_PREFIX) is None
