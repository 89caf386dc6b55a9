"""The token service (broker.tokens.service): revocation helpers and lookups; token formats
(broker.core.ids)."""

from __future__ import annotations

from broker.core import ids
from broker.storage import keys
from broker.tokens import service as tokens
from tests.support.factories import raw_installation
from tests.support.flows import introspect


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
