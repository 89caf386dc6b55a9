"""Round trips to Redis on the hot paths, counted (not timed): every write a connection sends is one
round trip, and the commands in it are read back from the wire.

* ``GET /v1/me``, userinfo: one round trip for the gate (the token check and the record, one
  EVALSHA) and one for the profile (HMGET); one more for the journals index, which lives in the log's
  slot, only when the app's journal for that log was not announced to it in the last minute. Never
  a ``SCRIPT EXISTS``; after the server lost its scripts (``SCRIPT FLUSH``, as a restart or failover
  does) the next request still works.
* Discovery, JWKS: one GET (the registry's redirect-URI version) with an Origin header, nothing
  without one; every app's URIs are read again only after an app changed, in any process.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.cluster import RedisCluster

from broker.apps import registry
from broker.consent import installations
from broker.core import ids
from broker.core.records import App
from broker.directory import departments
from broker.storage import keys
from broker.storage.store import Store
from broker.tokens import service as tokens
from broker.web.oauth import cors
from tests.support.client import basic, bearer
from tests.support.factories import (
    _catalog,
    make_app,
    make_installation,
    make_org,
    make_token,
    make_user,
    raw_app,
    raw_grant,
)
from tests.support.ledger import journal_records, log_of
from tests.support.privacy import sequence
from tests.support.round_trips import round_trips


def _flat(trips: list[list[str]]) -> list[str]:
    return [name for trip in trips for name in trip]


def _flush_scripts(store: Store) -> None:
    if isinstance(store.redis, RedisCluster):
        store.redis.execute_command("SCRIPT FLUSH", target_nodes=RedisCluster.PRIMARIES)
    else:
        store.redis.script_flush()


@pytest.fixture
def person(store, settings):
    uid = make_user(store, nickname="Alice")
    client_id = raw_app(store, developer_id="usr_dev1")
    gid = raw_grant(store, client_id, uid, "openid profile", "user_id nickname")
    token = make_token(
        store, settings, client_id, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
    )
    return {"uid": uid, "client_id": client_id, "token": token}


def _gate_trips(store: Store) -> list[list[str]]:
    """What the gate sends for one request once the app's journal for the person's log is announced
    to that log's journals index: one EVALSHA."""
    return [["EVALSHA"]]


def test_only_a_journal_not_yet_announced_costs_the_index_round_trip(client, store, settings, person) -> None:
    """The logs' journals indexes live in the logs' slots: the gate writes one only when its script
    found the journal's announcement mark absent (first record, or after the sequencer emptied the
    journal), on one node as on a cluster."""
    path = "/v1/me"
    forged = person["token"][:-4] + "AAAA"  # warms the script and the number of logs; records nothing
    assert client.get(path, headers=bearer(forged)).status_code == 401
    with round_trips() as trips:
        assert client.get(path, headers=bearer(person["token"])).status_code == 200
    gate = [t for t in trips if t != ["HMGET"]]
    assert gate == [["EVALSHA"], ["SADD"]]
    log = log_of(person["uid"], store)
    assert store.redis.smembers(keys.journals_index(log)) == {person["client_id"]}
    with round_trips() as trips:
        assert client.get(path, headers=bearer(person["token"])).status_code == 200
    assert trips == [["EVALSHA"], ["HMGET"]]
    # the sequencer empties the journal, and forgets it on its next run: the next record announces
    # it again
    sequence(store, settings)
    assert store.redis.smembers(keys.journals_index(log)) == {person["client_id"]}
    sequence(store, settings)
    assert store.redis.smembers(keys.journals_index(log)) == set()
    with round_trips() as trips:
        assert client.get(path, headers=bearer(person["token"])).status_code == 200
    gate = [t for t in trips if t != ["HMGET"]]
    assert gate == [["EVALSHA"], ["SADD"]]
    assert store.redis.smembers(keys.journals_index(log)) == {person["client_id"]}
    assert len(journal_records(store, person["client_id"])) == 1


@pytest.mark.parametrize("path", ["/v1/me", "/oauth/userinfo"])
def test_a_person_read_is_one_round_trip_for_the_gate_and_one_for_the_profile(
    client, store, person, path
) -> None:
    assert client.get(path, headers=bearer(person["token"])).status_code == 200  # connections warm
    with round_trips() as trips:
        response = client.get(path, headers=bearer(person["token"]))
    assert response.status_code == 200
    assert trips == [*_gate_trips(store), ["HMGET"]]
    assert len(journal_records(store, person["client_id"])) == 2  # each request recorded


def test_after_the_server_lost_its_scripts_the_next_request_still_works(client, store, person) -> None:
    assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 200
    _flush_scripts(store)  # what a restart or a failover to a fresh node does to the script cache
    with round_trips() as trips:
        response = client.get("/v1/me", headers=bearer(person["token"]))
    assert response.status_code == 200
    assert response.get_json()["nickname"] == "Alice"
    names = _flat(trips)
    # loaded again once (on a cluster: on each of its 3 primaries, as redis-py's Script does)
    assert names.count("SCRIPT LOAD") == (3 if store.cluster else 1)
    assert "SCRIPT EXISTS" not in names
    assert names.count("EVALSHA") == 2  # refused with NOSCRIPT (ran nothing), then run
    assert len(journal_records(store, person["client_id"])) == 2  # exactly one record per request
    with round_trips() as trips:
        assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 200
    assert trips == [*_gate_trips(store), ["HMGET"]]  # loaded again: back to the steady state
    assert len(journal_records(store, person["client_id"])) == 3


def test_a_refused_token_costs_the_gate_round_trip_and_records_nothing(client, store, person) -> None:
    assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 200
    forged = person["token"][:-4] + "AAAA"
    with round_trips() as trips:
        response = client.get("/v1/me", headers=bearer(forged))
    assert response.status_code == 401
    assert trips == _gate_trips(store)
    assert len(journal_records(store, person["client_id"])) == 1


@pytest.mark.parametrize("limited", [False, True], ids=["whole-org", "departments"])
def test_a_members_page_is_the_listing_then_the_gate_then_one_profile_read(
    client, store, settings, limited
) -> None:
    people = [make_user(store, nickname=f"member{i}") for i in range(6)]
    oid = make_org(store, people)
    cid = raw_app(store, kind="org_app", developer_id="usr_dev2")
    if limited:  # five of the six in a department the installation is limited to
        dep = departments.create(store, oid, "Team")["id"]
        for uid in people[:5]:
            departments.assign(store, oid, uid, [dep])
    iid = installations.install(store, cid, oid, None, "", [dep] if limited else None)["id"]
    token = make_token(
        store, settings, cid, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    url = f"/v1/orgs/{oid}/members?limit=5"
    assert client.get(url, headers=bearer(token)).status_code == 200
    with round_trips() as trips:
        response = client.get(url, headers=bearer(token))
    assert response.status_code == 200
    assert len(response.get_json()["members"]) == 5
    # members' profiles are in five slots: one round trip on one node, one per shard on a cluster
    profile_trips = trips[1 + len(_gate_trips(store)) :]
    # the listing is one script call (org_members_page.lua: the org's members, or the installation's
    # coverage set when the org limits it to departments), then the gate
    assert trips[: 1 + len(_gate_trips(store))] == [["EVALSHA"], *_gate_trips(store)]
    assert set(_flat(profile_trips)) == {"HMGET"} and _flat(profile_trips).count("HMGET") == 5
    assert len(profile_trips) == 1 if not store.cluster else len(profile_trips) <= 3
    assert "SCRIPT EXISTS" not in _flat(trips)


# --- discovery, JWKS: nothing per request that does not depend on it -------------------------------

ORIGIN = "https://app.example.com"


def _public_requests(client, origin: str | None) -> list[Any]:
    headers = {"Origin": origin} if origin else {}
    return [
        client.get("/.well-known/openid-configuration", headers=headers),
        client.get("/oauth/jwks", headers=headers),
        client.open("/oauth/userinfo", method="OPTIONS", headers=headers),
    ]


def test_discovery_and_jwks_read_one_key_not_every_app(client, store, settings) -> None:
    for i in range(5):
        make_app(store, settings, redirect_uris=[f"https://app{i}.example.com/cb"])
    make_app(store, settings)  # https://app.example.com/cb
    _public_requests(client, ORIGIN)  # the first request reads every app once
    with round_trips() as trips:
        answered = _public_requests(client, ORIGIN)
    assert [r.headers.get("Access-Control-Allow-Origin") for r in answered] == [ORIGIN] * 3
    assert trips == [["GET"]] * 3  # the redirect-URI version, nothing else
    with round_trips() as trips:
        answered = _public_requests(client, None)  # a server, not a browser: no Origin
    assert all(r.status_code in (200, 204) for r in answered)
    assert trips == []
    with round_trips() as trips:
        answered = _public_requests(client, "https://elsewhere.example.com")
    assert [r.headers.get("Access-Control-Allow-Origin") for r in answered] == [None] * 3
    assert trips == [["GET"]] * 3


def _allowed(client, origin: str) -> str | None:
    return client.get("/oauth/jwks", headers={"Origin": origin}).headers.get("Access-Control-Allow-Origin")


def test_an_app_registered_changed_or_deleted_elsewhere_counts_from_the_next_request(
    client, store, settings, redis_server
) -> None:
    make_app(store, settings)
    new_origin = "https://new.example.com"
    assert _public_requests(client, new_origin)[0].headers.get("Access-Control-Allow-Origin") is None
    other = Store.from_url(redis_server.url)  # another process's store: this one's cache is not told
    try:
        cid, _ = make_app(other, settings, redirect_uris=[f"{new_origin}/cb"])
        first = client.get("/oauth/jwks", headers={"Origin": new_origin})
        assert first.headers.get("Access-Control-Allow-Origin") == new_origin
        with round_trips() as trips:
            again = client.get("/oauth/jwks", headers={"Origin": new_origin})
        assert again.headers.get("Access-Control-Allow-Origin") == new_origin
        assert trips == [["GET"]]  # read once after the change, then cached again

        moved = "https://moved.example.com"
        registry.update_app(other, settings, _catalog(settings), cid, {"redirect_uris": [f"{moved}/cb"]})
        assert (
            client.get("/oauth/jwks", headers={"Origin": moved}).headers.get("Access-Control-Allow-Origin")
            == moved
        )
        assert (
            "Access-Control-Allow-Origin"
            not in client.get("/oauth/jwks", headers={"Origin": new_origin}).headers
        )

        registry.delete_app(other, cid)
        assert (
            "Access-Control-Allow-Origin" not in client.get("/oauth/jwks", headers={"Origin": moved}).headers
        )
    finally:
        other.close()


# --- introspection -------------------------------------------------------------------------------


def test_introspection_is_client_authentication_then_one_token_lookup(client, store, settings) -> None:
    uid = make_user(store)
    cid, secret = make_app(store, settings)
    assert secret is not None
    gid = raw_grant(store, cid, uid, "openid profile", "user_id nickname")
    token = make_token(store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="openid profile")
    form = {"token": token}
    assert client.post("/oauth/introspect", data=form, headers=basic(cid, secret)).get_json()["active"]
    with round_trips() as trips:
        response = client.post("/oauth/introspect", data=form, headers=basic(cid, secret))
    assert response.get_json()["active"] is True
    # the client's record and secrets in one round trip (Authlib's client authentication), then the
    # token: one script call in its app's slot (the token, its app and its grant, checked together)
    assert trips == [["HGETALL", "HGETALL"], ["EVALSHA"]]


@pytest.mark.parametrize("which", ["access token", "refresh token", "unknown token", "organization token"])
def test_introspection_answers_from_one_key_lookup_whatever_the_token(client, store, settings, which) -> None:
    """RFC 7662 for an active token of either kind and for an unknown one: after the client's
    authentication, exactly one script call (the token's key, its app and its grant or installation,
    in one slot); a token of another client or a malformed one costs no lookup at all."""
    uid = make_user(store)
    org = which == "organization token"
    cid, secret = make_app(
        store, settings, **({"kind": "org_app", "scopes": "org.members.read"} if org else {})
    )
    assert secret is not None
    if org:
        oid = make_org(store)
        iid = make_installation(store, cid, oid)
        token = make_token(store, settings, cid, kind="installation", subject=oid, grant_id=iid,
                           scopes="org.members.read")  # fmt: skip
        active = True
    else:
        gid = raw_grant(store, cid, uid, "openid profile", "user_id nickname")
        access = make_token(store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="openid")
        if which == "refresh token":
            token = ids.new_token(ids.REFRESH_PREFIX, cid)
            tokens.issue(store, settings.token_hash_key, tokens.Issue(
                client_id=cid, kind="grant", subject=uid, grant_id=gid, scopes="openid",
                access_token=ids.new_token(ids.ACCESS_PREFIX, cid), access_expires_at=int(time.time()) + 60,
                refresh_token=token, refresh_expires_at=int(time.time()) + 600, family=tokens.new_family(),
            ))  # fmt: skip
        else:
            token = access if which == "access token" else ids.new_token(ids.ACCESS_PREFIX, cid)
        active = which != "unknown token"
    form = {"token": token}
    assert client.post("/oauth/introspect", data=form, headers=basic(cid, secret)).status_code == 200
    with round_trips() as trips:
        response = client.post("/oauth/introspect", data=form, headers=basic(cid, secret))
    assert response.get_json()["active"] is active
    assert trips == [["HGETALL", "HGETALL"], ["EVALSHA"]]
    for other in (ids.new_token(ids.ACCESS_PREFIX, make_app(store, settings)[0]), "brk_at_not-a-token"):
        with round_trips() as trips:
            response = client.post("/oauth/introspect", data={"token": other}, headers=basic(cid, secret))
        assert response.get_json() == {"active": False}
        assert trips == [["HGETALL", "HGETALL"]]  # the client only


def test_client_credentials_is_client_authentication_then_one_script(client, store, settings) -> None:
    """The token endpoint for an organization token: the client (one round trip), then one script
    that checks the installation, chooses the scopes and writes the token."""
    cid, secret = make_app(store, settings, kind="org_app", scopes="org.members.read")
    assert secret is not None
    oid = make_org(store)
    make_installation(store, cid, oid)
    form = {"grant_type": "client_credentials", "org_id": oid}
    assert client.post("/oauth/token", data=form, headers=basic(cid, secret)).status_code == 200
    with round_trips() as trips:
        response = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    assert response.status_code == 200
    assert response.get_json()["scope"] == "org.members.read"
    assert trips == [["HGETALL", "HGETALL"], ["EVALSHA"]]


def test_a_batch_after_the_server_lost_its_scripts_answers_every_step_in_order(store) -> None:
    """What the login throttle and the session store send: scripts and commands in one batch."""
    store.redis.set("b:rt:plain", "1")
    script = store.lua("login_reserve")  # INCR with a window: a script whose result shows it ran
    _flush_scripts(store)
    with round_trips() as trips:
        results = (
            store.batch()
            .command("get", "b:rt:plain")
            .script(script, ["b:rt:counter"], [60])
            .command("incr", "b:rt:plain")
            .execute()
        )
    assert results[0] == "1" and results[2] == 2
    assert results[1][0] == 1  # the script ran exactly once
    assert int(store.redis.get("b:rt:counter")) == 1
    assert "SCRIPT EXISTS" not in _flat(trips)
    with round_trips() as trips:
        again = store.batch().script(script, ["b:rt:counter"], [60]).execute()
    assert again[0][0] == 2
    assert trips == [["EVALSHA"]]


def test_a_change_that_bypassed_the_registry_counts_after_the_cache_age(client, store, settings, monkeypatch):
    """A restore or a hand edit does not replace the registry's version: the origins are read again
    once they are MAX_AGE_SECONDS old."""
    cid, _ = make_app(store, settings)
    edited = "https://edited.example.com"
    assert _allowed(client, ORIGIN) == ORIGIN  # cached now
    store.redis.hset(keys.app(cid), mapping=App(redirect_uris=[f"{edited}/cb"]).to_hash())
    assert _allowed(client, edited) is None  # not told: the cached origins still answer
    monkeypatch.setattr(cors, "MAX_AGE_SECONDS", 0.0)
    assert _allowed(client, edited) == edited
    assert _allowed(client, ORIGIN) is None
