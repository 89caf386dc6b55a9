"""DESIGN invariant 3: minimum data. A response never carries a field outside the allowed set
(token scopes ∩ grant ∩ catalog-shareable, or the installation's scopes), whatever else the person's
record holds and even if the stored grant names more."""

from __future__ import annotations

from typing import Any

from tests.support.client import bearer
from tests.support.factories import (
    make_app,
    make_grant,
    make_installation,
    make_org,
    make_token,
    make_user,
    raw_app,
    raw_grant,
)

PRIVATE = {"name": "Real Name Li", "email": "li@example.com", "mobile": "+8613800000001"}


def test_a_person_token_gets_only_the_ticked_fields(client: Any, store: Any, settings: Any) -> None:
    uid = make_user(store, nickname="Li", avatar="https://avatars.example/li.png", **PRIVATE)
    cid, _ = make_app(store, settings)
    gid = make_grant(store, settings, cid, uid, "openid profile", "user_id nickname")  # avatar unticked
    token = make_token(store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="openid profile")
    for path, expected in (("/v1/me", {"user_id", "nickname"}), ("/oauth/userinfo", {"sub", "nickname"})):
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 200
        assert set(response.get_json()) == expected, path
        body = response.get_data(as_text=True)
        for value in (*PRIVATE.values(), "avatars.example", uid):
            assert value not in body, (path, value)


def test_a_grant_that_names_more_than_the_catalog_shares_still_gives_only_shareable_fields(
    client: Any, store: Any, settings: Any
) -> None:
    uid = make_user(store, nickname="Li", **PRIVATE)
    cid = raw_app(store, developer_id="usr_dev1")
    gid = raw_grant(store, cid, uid, "openid profile", "user_id nickname email mobile name password_hash")
    token = make_token(store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="openid profile")
    response = client.get("/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert set(response.get_json()) <= {"user_id", "nickname", "avatar"}
    for value in PRIVATE.values():
        assert value not in response.get_data(as_text=True)


def test_an_org_token_gets_only_the_basic_fields_of_members(client: Any, store: Any, settings: Any) -> None:
    alice = make_user(store, nickname="Alice", avatar="https://avatars.example/a.png", **PRIVATE)
    oid = make_org(store, [alice])
    cid = raw_app(store, kind="org_app", developer_id="usr_dev2")
    iid = make_installation(store, cid, oid, "org.members.read")
    token = make_token(
        store, settings, cid, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    response = client.get(f"/v1/orgs/{oid}/members", headers=bearer(token))
    assert response.status_code == 200
    [member] = response.get_json()["members"]
    assert set(member) <= {"user_id", "nickname", "avatar"}
    for value in (*PRIVATE.values(), alice):
        assert value not in response.get_data(as_text=True)
