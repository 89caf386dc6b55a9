"""RFC 7662 token introspection: active tokens described, anything else ``{"active": false}``;
client authentication required."""

from __future__ import annotations

from broker.storage import keys
from broker.tokens import service as tokens
from tests.support.factories import make_app
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
