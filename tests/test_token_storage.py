"""Token storage (docs/architecture.md "Token storage and the token endpoint", issue 12 item 3):
nothing a token leaves behind grows without bound.

* A token is one key; its grant or installation keeps no set of them: revoking them all moves the
  owner's generation on, revoking a chain names it in the grant (at most four, then a new generation).
* There is no per-chain (family) key: a chain ends with its grant and with its last token.
* Tokens issued with a lifetime of 1-2 seconds through the token endpoint leave nothing once they
  expired: every token-related key is gone and Redis memory is back at its baseline.
* A live organization token costs well under 600 bytes of Redis memory (the budget is 400; the
  figure is reported by ``scripts/token_memory.py``, this is only a generous ceiling).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from redis.cluster import RedisCluster

from broker.app import create_app
from broker.consent import grants
from broker.core import ids
from broker.core.hashing import keyed_hash
from broker.storage import keys
from broker.storage.store import Store
from broker.tokens import service as tokens
from tests.support import oauth
from tests.support.client import basic
from tests.support.factories import make_app, make_grant, make_user, raw_app, raw_installation, raw_secret
from tests.support.signin import session_sign_in
from tests.support.tokens import token_keys, usable

ORG = "org_aaaaaaaaaaaaaaaa"
TOKEN_PATTERNS = ("*:at:*", "*:rt:*", "*:toks:*", "*:code:*", "*:fam:*", "*:gtok:*")


@pytest.fixture
def short(store, settings):
    """The app with access tokens of one second and refresh tokens (and code tombstones) of two."""
    short_settings = replace(settings, access_token_ttl=1, refresh_token_ttl=2)
    application = create_app(short_settings, store)
    application.config["TESTING"] = True
    return application.test_client(), short_settings


@pytest.fixture
def org_app(store, settings):
    cid = raw_app(store, kind="org_app")
    secret = raw_secret(store, settings, cid, None)
    inst_id = raw_installation(store, cid, ORG, "org.members.read")
    return cid, secret, inst_id


def _token_keys_anywhere(store: Store) -> list[str]:
    return sorted({k for pattern in TOKEN_PATTERNS for k in store.redis.scan_iter(match=pattern, count=1000)})


def _all_keys(store: Store) -> set[str]:
    return set(store.redis.scan_iter(match="*", count=1000))


def _used_memory(store: Store) -> int:
    if isinstance(store.redis, RedisCluster):
        per_node = store.redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
        return sum(int(info["used_memory"]) for info in per_node.values())
    return int(store.redis.info("memory")["used_memory"])


def _wait_until(condition: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _issue(store: Store, settings: Any, cid: str, grant_id: str, expires_at: int, **extra: Any) -> str:
    token = ids.new_token(ids.ACCESS_PREFIX, cid)
    item = tokens.Issue(client_id=cid, kind="installation", subject=ORG, grant_id=grant_id,
                        scopes="org.members.read", access_token=token, access_expires_at=expires_at,
                        refresh_token=None, refresh_expires_at=0, **extra)  # fmt: skip
    tokens.issue(store, settings.token_hash_key, item)
    return token


def _client_credentials(client: Any, cid: str, secret: str) -> str:
    response = client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "org_id": ORG}, headers=basic(cid, secret)
    )
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["access_token"])


def test_a_token_is_one_key_and_its_owner_keeps_no_set_of_them(client, store, org_app) -> None:
    cid, secret, inst_id = org_app
    issued = [_client_credentials(client, cid, secret) for _ in range(3)]
    assert len(set(issued)) == 3
    tag = keys.app_tag(cid)
    mine = [k for k in _token_keys_anywhere(store) if k.startswith(tag)]
    assert len(mine) == 3 and mine == token_keys(store, cid, inst_id)  # no set, no chain key
    assert not store.redis.exists(keys.grant_tokens(cid, inst_id))
    assert all(not tokens.decode_token(store.redis.get(k))["family"] for k in mine)


def test_revoking_an_installations_tokens_ends_every_one_at_once_and_new_ones_work(
    client, store, settings, org_app
) -> None:
    cid, secret, inst_id = org_app
    before = [_client_credentials(client, cid, secret) for _ in range(3)]
    inst = keys.installation(cid, ORG)
    assert tokens.revoke_grant_tokens(store, inst, inst_id) == 1
    for token in before:
        assert tokens.lookup_access_token(store, settings.token_hash_key, token) is None
    after = _client_credentials(client, cid, secret)  # issued in the new generation
    info = tokens.lookup_access_token(store, settings.token_hash_key, after)
    assert info is not None and info.grant_id == inst_id
    assert tokens.revoke_grant_tokens(store, inst, inst_id) == 1
    assert tokens.lookup_access_token(store, settings.token_hash_key, after) is None


def test_a_refresh_chain_leaves_no_key_of_its_own_and_ends_with_its_grant(flow, store, settings) -> None:
    body = flow["token"](flow["code_form"]()).get_json()
    for _ in range(20):
        response = flow["token"]({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
    tag = keys.app_tag(flow["cid"])
    mine = [k for k in _token_keys_anywhere(store) if k.startswith(tag) and ":code:" not in k]
    live = token_keys(store, flow["cid"], flow["grant_id"])
    # every key is one of the grant's tokens (rotated refresh tokens stay until they expire): no
    # per-chain key and no token set
    assert sorted(mine) == live
    assert len(live) <= 2 * 21
    assert tokens.lookup_access_token(store, settings.token_hash_key, body["access_token"]) is not None
    assert grants.revoke_grant(store, settings, flow["cid"], flow["uid"]) is not None
    assert tokens.lookup_access_token(store, settings.token_hash_key, body["access_token"]) is None
    assert tokens.lookup_refresh_token(store, settings.token_hash_key, body["refresh_token"]) is None
    assert not any(usable(store, k) for k in live)  # their keys stay, unusable, until they expire
    assert all(0 < store.redis.ttl(k) <= settings.refresh_token_ttl for k in live)  # and they do


def test_five_revoked_chains_of_one_grant_start_a_new_generation(flow, store, settings) -> None:
    """A grant names at most four revoked chains (``rf``, so its hash stays compact); revoking a
    fifth ends every token of the grant instead: a revoked chain never comes back."""
    pairs = [flow["token"](flow["code_form"]()).get_json() for _ in range(6)]
    grant = keys.grant(flow["cid"], flow["uid"])
    for n, pair in enumerate(pairs[:4]):
        assert tokens.revoke_token(store, settings.token_hash_key, pair["refresh_token"], family=True)
        assert len(store.redis.hget(grant, "rf").split()) == n + 1
    alive = [tokens.lookup_access_token(store, settings.token_hash_key, p["access_token"]) for p in pairs]
    assert [a is not None for a in alive] == [False] * 4 + [True] * 2
    assert tokens.revoke_token(store, settings.token_hash_key, pairs[4]["refresh_token"], family=True)
    assert store.redis.hget(grant, "gen") == "1" and store.redis.hget(grant, "rf") is None
    for pair in pairs:
        assert tokens.lookup_access_token(store, settings.token_hash_key, pair["access_token"]) is None
        assert tokens.lookup_refresh_token(store, settings.token_hash_key, pair["refresh_token"]) is None
    fresh = flow["token"](flow["code_form"]()).get_json()  # the grant itself goes on
    assert tokens.lookup_access_token(store, settings.token_hash_key, fresh["access_token"]) is not None


def test_short_lived_tokens_leave_nothing_behind_once_expired(store, short, org_app) -> None:
    """Issue tokens of 1-2 seconds through the token endpoint for a while; once they expired and the
    trimming path ran, every token-related key is gone and memory is back at its baseline."""
    client, short_settings = short
    cid, secret, _ = org_app
    mini, mini_secret = make_app(store, short_settings)
    uid = make_user(store, "alice", "pw")
    make_grant(store, short_settings, mini, uid, "openid profile", "user_id nickname")
    session_sign_in(client, uid)

    def person_round() -> None:  # scope profile: no id_token, so no disclosure record either
        form = oauth.code_form(client, mini, scope="profile")
        body = client.post("/oauth/token", data=form, headers=basic(mini, mini_secret)).get_json()
        assert "refresh_token" in body, body
        refreshed = client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
            headers=basic(mini, mini_secret),
        )
        assert refreshed.status_code == 200, refreshed.get_json()

    _client_credentials(client, cid, secret)
    person_round()  # scripts loaded, connections open, the session written: what stays anyway
    _wait_until(lambda: _token_keys_anywhere(store) == [])
    baseline_keys, baseline_memory = _all_keys(store), _used_memory(store)
    rounds = 0
    started = time.monotonic()
    while rounds < 20 or time.monotonic() - started < 3:  # over more than one token lifetime
        for _ in range(10):
            _client_credentials(client, cid, secret)
        person_round()
        rounds += 1
    assert _token_keys_anywhere(store) != []
    _wait_until(lambda: _token_keys_anywhere(store) == [])
    _client_credentials(client, cid, secret)  # the trimming path, once everything it held expired
    _wait_until(lambda: _token_keys_anywhere(store) == [])
    assert _all_keys(store) == baseline_keys  # not one key more than before
    if not store.cluster:  # (three nodes' gossip and buffers make a cluster's total too noisy)
        written = rounds * 15  # per round: 10 organization tokens, a code, 2 pairs
        assert _used_memory(store) - baseline_memory < written * 20  # nothing per token remains


def test_a_live_organization_token_costs_well_under_600_bytes(store, settings, org_app) -> None:
    cid, _, inst_id = org_app
    expires = int(time.time()) + 3600
    _issue(store, settings, cid, inst_id, expires)  # the set and the script exist before the baseline
    before = _used_memory(store)
    n = 500  # more than a sorted set keeps compact (128): the costly encoding, as at scale
    for _ in range(n):
        _issue(store, settings, cid, inst_id, expires)
    per_token = (_used_memory(store) - before) / n
    assert per_token < 600, per_token


def test_migration_3_rewrites_tokens_of_the_old_layout_and_they_keep_working(
    client, store, settings, org_app
) -> None:
    """Tokens 0.2.0 stored (a hash named by the full keyed hash, plain sets per grant and per chain)
    still work after ``broker migrate``: same token, same expiry; the old keys are gone."""
    from broker.migrations import m0003_compact_tokens

    cid, secret, inst_id = org_app
    token = ids.new_token(ids.ACCESS_PREFIX, cid)
    full_hash = keyed_hash(settings.token_hash_key, token)
    tag = keys.app_tag(cid)
    old_key, old_set, old_family = f"{tag}:at:{full_hash}", f"{tag}:gtok:{inst_id}", f"{tag}:fam:abc123"
    expires = int(time.time()) + 3600
    store.redis.hset(old_key, mapping={
        "client_id": cid, "kind": "installation", "subject": ORG, "grant_id": inst_id,
        "scopes": "org.members.read", "issued_at": str(expires - 7200), "code": "", "family": "abc123",
        "auth_time": "", "expires_at": str(expires),
    })  # fmt: skip
    store.redis.expireat(old_key, expires)
    store.redis.sadd(old_set, old_key)
    store.redis.sadd(old_family, old_key)
    expired = f"{tag}:at:{'0' * 64}"  # a token whose key has no expiry left to keep
    store.redis.hset(expired, mapping={"client_id": cid, "kind": "installation", "grant_id": inst_id})
    assert tokens.lookup_access_token(store, settings.token_hash_key, token) is None  # unreadable before

    m0003_compact_tokens.up(store, settings)
    m0003_compact_tokens.up(store, settings)  # idempotent
    assert not any(store.redis.exists(k) for k in (old_key, old_set, old_family, expired))
    info = tokens.lookup_access_token(store, settings.token_hash_key, token)
    assert info is not None
    assert (info.kind, info.subject, info.grant_id, info.expires_at) == (
        "installation",
        ORG,
        inst_id,
        expires,
    )
    assert info.effective_scopes == ("org.members.read",)
    [new_key] = token_keys(store, cid, inst_id)
    assert abs(time.time() + store.redis.pttl(new_key) / 1000 - expires) < 2
    introspected = client.post(
        "/oauth/introspect", data={"token": token}, headers=basic(cid, secret)
    ).get_json()
    assert introspected["active"] is True and introspected["org_id"] == ORG
    # and it is revoked with its installation
    assert tokens.revoke_grant_tokens(store, keys.installation(cid, ORG), inst_id) == 1
    assert tokens.lookup_access_token(store, settings.token_hash_key, token) is None


def test_migration_8_drops_token_sets_and_a_code_replayed_after_it_still_ends_its_chain(
    flow, store, settings
) -> None:
    """Data of schema version 7: every grant kept a sorted set of its tokens, and a redeemed code's
    tombstone named only the grant id. After migration 8 the sets are gone, the tombstone names the
    grant's person, the tokens keep working, and replaying the code still revokes its chain."""
    from broker.migrations import m0008_token_generations

    form = flow["code_form"]()
    body = flow["token"](form).get_json()
    cid, tag = flow["cid"], keys.app_tag(flow["cid"])
    mine = token_keys(store, cid, flow["grant_id"])
    old_set = keys.grant_tokens(cid, flow["grant_id"])
    store.redis.zadd(old_set, {f"{k[len(tag) + 1]}{k.rpartition(':')[2]}": 2_000_000_000 for k in mine})
    [tombstone] = [
        k for k in store.redis.scan_iter(match=keys.auth_code(cid, "*")) if store.redis.hget(k, "used")
    ]
    store.redis.hdel(tombstone, "subject")

    m0008_token_generations.up(store, settings)
    m0008_token_generations.up(store, settings)  # idempotent
    assert not store.redis.exists(old_set)
    assert store.redis.hget(tombstone, "subject") == flow["uid"]
    assert tokens.lookup_access_token(store, settings.token_hash_key, body["access_token"]) is not None

    replay = flow["token"](form)
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert tokens.lookup_access_token(store, settings.token_hash_key, body["access_token"]) is None
    assert tokens.lookup_refresh_token(store, settings.token_hash_key, body["refresh_token"]) is None
