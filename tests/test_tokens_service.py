"""The token service (broker.tokens.service): revocation helpers and lookups; token formats
(broker.core.ids)."""

from __future__ import annotations

from broker.core import ids
from broker.storage import keys
from broker.tokens import service as tokens
from tests.support.factories import raw_installation
from tests.support.flows import introspect
from tests.support.tokens import token_keys


def test_revoking_a_grants_tokens_moves_its_generation_on(client, store, issued):
    grant = keys.grant(issued["cid"], issued["uid"])
    assert tokens.revoke_grant_tokens(store, grant, issued["grant_id"]) == 1
    assert store.redis.hget(grant, "gen") == "1"
    assert introspect(client, issued["cid"], issued["secret"], issued["access_token"]) == {"active": False}
    assert introspect(client, issued["cid"], issued["secret"], issued["refresh_token"]) == {"active": False}
    # another id (a grant replaced since) or no grant at all: nothing to do, nothing created
    assert tokens.revoke_grant_tokens(store, grant, "gr_other") == 0
    assert store.redis.hget(grant, "gen") == "1"
    missing = keys.grant(issued["cid"], "usr_nobody")
    assert tokens.revoke_grant_tokens(store, missing, "gr_x") == 0
    assert not store.redis.exists(missing)


def test_delete_app_tokens_removes_every_token_key_of_the_app(client, store, settings, issued):
    raw_installation(store, issued["cid"], "org_aaaaaaaaaaaaaaaa", "org.members.read")
    assert tokens.delete_app_tokens(store, issued["cid"]) == 2
    assert token_keys(store, issued["cid"], issued["grant_id"]) == []
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
