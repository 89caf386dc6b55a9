"""The disclosure gate through the data API: exactly the consented fields, a record for each
disclosed person, nothing for a refused request (DESIGN invariants 1-4)."""

from __future__ import annotations

import pytest

from broker.core.pairwise import pairwise_id
from broker.storage import keys
from tests.support.client import bearer
from tests.support.factories import (
    make_installation,
    make_org,
    make_token,
    make_user,
    raw_app,
    raw_grant,
)
from tests.support.ledger import journal_records
from tests.support.tokens import token_keys, update


@pytest.fixture
def person(store, settings):
    uid = make_user(store, nickname="Alice", avatar="https://a.example/alice.png")
    client_id = raw_app(store, developer_id="usr_dev1")
    gid = raw_grant(store, client_id, uid, "openid profile", "user_id nickname")  # avatar unticked
    token = make_token(
        store, settings, client_id, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
    )
    return {"uid": uid, "client_id": client_id, "gid": gid, "token": token}


def test_me_returns_exactly_the_ticked_fields_and_records_them(client, store, settings, person) -> None:
    response = client.get("/v1/me", headers=bearer(person["token"]))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "user_id": pairwise_id(settings.pairwise_key, person["client_id"], person["uid"]),
        "nickname": "Alice",
    }
    [record] = journal_records(store, person["client_id"])
    assert record["person"] == person["uid"]
    assert record["fields"] == ["nickname", "user_id"]
    assert record["grant"] == person["gid"]
    assert record["audience"] == "individual"
    assert record["org"] is None
    assert record["developer"] == "usr_dev1"
    assert record["endpoint"] == "GET /v1/me"
    assert record["request_id"] == response.headers["X-Request-Id"]
    assert record["catalog_version"]
    assert "Alice" not in str(record)  # field names, never values


def test_userinfo_uses_oidc_claim_names(client, store, settings, person) -> None:
    response = client.get("/oauth/userinfo", headers=bearer(person["token"]))
    assert response.status_code == 200
    assert response.get_json() == {
        "sub": pairwise_id(settings.pairwise_key, person["client_id"], person["uid"]),
        "nickname": "Alice",
    }
    assert journal_records(store, person["client_id"])[0]["endpoint"] == "userinfo"


def test_pairwise_ids_differ_per_app(client, store, settings, person) -> None:
    other = raw_app(store)
    gid = raw_grant(store, other, person["uid"], "openid", "user_id")
    token = make_token(
        store, settings, other, kind="grant", subject=person["uid"], grant_id=gid, scopes="openid"
    )
    first = client.get("/v1/me", headers=bearer(person["token"])).get_json()["user_id"]
    second = client.get("/v1/me", headers=bearer(token)).get_json()
    assert second == {"user_id": pairwise_id(settings.pairwise_key, other, person["uid"])}
    assert first != second["user_id"]


@pytest.mark.parametrize(
    "revoke",
    ["delete_grant", "regrant", "suspend_app", "expire", "delete_token"],
)
def test_refused_after_revocation_and_nothing_recorded(client, store, settings, person, revoke) -> None:
    assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 200
    cid, uid = person["client_id"], person["uid"]
    if revoke == "delete_grant":
        store.redis.delete(keys.grant(cid, uid))
    elif revoke == "regrant":  # a new grant does not revive tokens of the old one
        store.redis.delete(keys.grant(cid, uid))
        raw_grant(store, cid, uid, "openid profile", "user_id nickname")
    elif revoke == "suspend_app":
        store.redis.hset(keys.app(cid), "status", "suspended")
    elif revoke == "expire":
        for key in token_keys(store, cid, person["gid"]):
            update(store, key, expires_at=1)
    else:
        for key in token_keys(store, cid, person["gid"]):
            store.redis.delete(key)
    response = client.get("/v1/me", headers=bearer(person["token"]))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="broker", error="invalid_token"')
    assert len(journal_records(store, cid)) == 1


def test_per_scope_revocation_shrinks_the_response_at_once(client, store, person) -> None:
    store.redis.hset(
        keys.grant(person["client_id"], person["uid"]), mapping={"scopes": "openid", "fields": "user_id"}
    )
    body = client.get("/v1/me", headers=bearer(person["token"])).get_json()
    assert set(body) == {"user_id"}
    assert journal_records(store, person["client_id"])[-1]["fields"] == ["user_id"]


def test_a_person_token_cannot_read_members_and_an_org_token_cannot_read_me(
    client, store, settings, person
) -> None:
    oid = make_org(store, [person["uid"]])
    # A valid token of the wrong kind is 403 insufficient_scope (RFC 6750 3.1), not 401 invalid_token:
    # refreshing would not help (issue 16).
    response = client.get(f"/v1/orgs/{oid}/members", headers=bearer(person["token"]))
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    assert "organization token" in response.get_json()["detail"]
    org_app = raw_app(store, kind="org_app")
    iid = make_installation(store, org_app, oid)
    org_token = make_token(
        store, settings, org_app, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    assert client.get("/v1/me", headers=bearer(org_token)).status_code == 403
    assert journal_records(store, org_app) == []


@pytest.fixture
def org(store, settings):
    people = [make_user(store, nickname=f"member{i}") for i in range(3)]
    oid = make_org(store, people)
    cid = raw_app(store, kind="org_app", developer_id="usr_dev2")
    iid = make_installation(store, cid, oid)
    token = make_token(
        store, settings, cid, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    return {"oid": oid, "people": people, "client_id": cid, "iid": iid, "token": token}


def test_members_pages_and_one_record_per_person(client, store, settings, org) -> None:
    first = client.get(f"/v1/orgs/{org['oid']}/members?limit=2", headers=bearer(org["token"]))
    assert first.status_code == 200
    page1 = first.get_json()
    assert [m["nickname"] for m in page1["members"]] == ["member0", "member1"]
    assert all(set(m) == {"user_id", "nickname", "avatar"} for m in page1["members"])
    assert page1["members"][0]["user_id"] == pairwise_id(
        settings.pairwise_key, org["client_id"], org["people"][0], org["oid"]
    )
    second = client.get(
        f"/v1/orgs/{org['oid']}/members?limit=2&cursor={page1['next_cursor']}", headers=bearer(org["token"])
    ).get_json()
    assert [m["nickname"] for m in second["members"]] == ["member2"]
    assert second["next_cursor"] is None
    records = journal_records(store, org["client_id"])
    assert [r["person"] for r in records] == org["people"]
    assert {r["audience"] for r in records} == {"organization"}
    assert {r["org"] for r in records} == {org["oid"]}
    assert {r["grant"] for r in records} == {org["iid"]}
    assert {tuple(r["fields"]) for r in records} == {("avatar", "nickname", "user_id")}


def test_member_by_pairwise_id(client, store, org) -> None:
    listing = client.get(f"/v1/orgs/{org['oid']}/members", headers=bearer(org["token"])).get_json()
    wanted = listing["members"][1]
    response = client.get(f"/v1/orgs/{org['oid']}/members/{wanted['user_id']}", headers=bearer(org["token"]))
    assert response.status_code == 200
    assert response.get_json() == wanted
    assert journal_records(store, org["client_id"])[-1]["person"] == org["people"][1]


def test_other_orgs_data_looks_exactly_like_missing(client, store, settings, org) -> None:
    other_member = make_user(store)
    other = make_org(store, [other_member])
    missing = "org_0000000000000000"
    responses = [
        client.get(f"/v1/orgs/{other}/members", headers=bearer(org["token"])),
        client.get(f"/v1/orgs/{missing}/members", headers=bearer(org["token"])),
    ]
    assert [r.status_code for r in responses] == [404, 404]
    bodies = [r.get_json() for r in responses]
    assert bodies[0] == bodies[1]
    unknown_member = client.get(f"/v1/orgs/{org['oid']}/members/u_nobody", headers=bearer(org["token"]))
    assert unknown_member.status_code == 404
    assert journal_records(store, org["client_id"]) == []


@pytest.mark.parametrize("change", ["disable", "remove", "suspend", "shrink_scopes"])
def test_org_token_refused_after_admin_change(client, store, org, change) -> None:
    url = f"/v1/orgs/{org['oid']}/members"
    assert client.get(url, headers=bearer(org["token"])).status_code == 200
    before = len(journal_records(store, org["client_id"]))
    inst = keys.installation(org["client_id"], org["oid"])
    if change == "disable":
        store.redis.hset(inst, "enabled", "0")
    elif change == "remove":
        store.redis.delete(inst)
    elif change == "suspend":
        store.redis.hset(keys.app(org["client_id"]), "status", "suspended")
    else:
        store.redis.hset(inst, "scopes", "")
    response = client.get(url, headers=bearer(org["token"]))
    assert response.status_code == (403 if change == "shrink_scopes" else 401)
    assert len(journal_records(store, org["client_id"])) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=%%%", "cursor"),
        ("?cursor=bm9wZQ", "cursor"),
        ("?colour=red", "colour"),
    ],
)
def test_bad_paging_names_the_field_and_records_nothing(client, store, org, query, field) -> None:
    response = client.get(f"/v1/orgs/{org['oid']}/members{query}", headers=bearer(org["token"]))
    assert response.status_code == 400
    assert field in response.get_json()["errors"]
    assert journal_records(store, org["client_id"]) == []


def test_redis_down_means_503_and_no_data(client, store, redis_server, person) -> None:
    redis_server.stop()
    try:
        response = client.get("/v1/me", headers=bearer(person["token"]))
        assert response.status_code == 503
        assert response.get_json()["error"] == "temporarily_unavailable"
        assert "Alice" not in response.get_data(as_text=True)
        assert "Traceback" not in response.get_data(as_text=True)
    finally:
        redis_server.start()


def test_userinfo_cors_only_for_the_token_apps_own_origins(client, store, settings, person) -> None:
    own = "http://127.0.0.1:8765"  # origin of the app's registered redirect URI (tests/support/factories)
    ok = client.get("/oauth/userinfo", headers={**bearer(person["token"]), "Origin": own})
    assert ok.headers["Access-Control-Allow-Origin"] == own
    assert "Origin" in ok.headers["Vary"]
    other = client.get(
        "/oauth/userinfo", headers={**bearer(person["token"]), "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    store.redis.zadd(keys.apps_all(), {person["client_id"]: 1})
    preflight = client.options(
        "/oauth/userinfo", headers={"Origin": own, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == own
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


def test_scripts_are_reloaded_after_a_script_flush(client, store, person) -> None:
    """Scripts are registered once; after SCRIPT FLUSH (a failover, a restart) NOSCRIPT reloads them."""
    assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 200
    store.redis.script_flush()
    assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 200
    assert len(journal_records(store, person["client_id"])) == 2
