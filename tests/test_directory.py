"""Directory service and the platform API (/internal/v1): users, orgs, memberships, NDJSON import."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.core import ids
from broker.directory import service as directory
from broker.errors import Conflict, NotFound
from broker.storage import keys


def auth(settings: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.platform_api_key}"}


# --- service ---------------------------------------------------------------------------------


def test_user_lifecycle_and_password(store) -> None:
    user = directory.create_user(
        store, {"username": "Alice", "password": "correct horse", "email": "a@x.org"}
    )
    uid = user["id"]
    assert ids.USER_ID_RE.match(uid)
    assert "password_hash" not in user and user["nickname"] == "Alice"
    assert store.redis.hget(keys.user(uid), "password_hash").startswith("$argon2id$")
    assert directory.verify_password(store, "alice", "correct horse") == uid  # case-insensitive
    assert directory.verify_password(store, "alice", "wrong") is None
    assert directory.verify_password(store, "nobody", "correct horse") is None
    with pytest.raises(Conflict):
        directory.create_user(store, {"username": "ALICE", "password": "another one"})
    assert directory.get_users(store, [uid, "usr_0000000000000000", "bad"]) == {
        uid: directory.get_user(store, uid)
    }
    directory.delete_user(store, uid)
    gone = directory.get_user(store, uid)
    assert gone is not None and gone["status"] == "deleted" and "email" not in gone
    assert directory.verify_password(store, "alice", "correct horse") is None
    assert store.redis.get(keys.username_index("alice")) is None  # the name is free again


def test_rename_moves_the_username_index(store) -> None:
    uid = directory.create_user(store, {"username": "bob", "password": "password1"})["id"]
    directory.update_user(store, uid, {"username": "robert"})
    assert directory.find_user_by_username(store, "ROBERT")["id"] == uid
    assert directory.find_user_by_username(store, "bob") is None


def test_memberships_keep_join_order_and_paginate(store) -> None:
    oid = directory.create_org(store, {"name": "Acme"})["id"]
    uids = [directory.create_user(store, {"username": f"user{i}"})["id"] for i in range(5)]
    for uid in uids:
        assert directory.add_member(store, oid, uid) is True
    assert directory.add_member(store, oid, uids[0], "sub_admin", ["apps.manage"]) is False  # re-role only
    assert directory.member_role(store, oid, uids[0]) == {"role": "sub_admin", "permissions": ["apps.manage"]}
    page, cursor = directory.list_members(store, oid, None, 2)
    assert [uid for _, uid in page] == uids[:2] and cursor == page[-1][0]
    page2, cursor2 = directory.list_members(store, oid, cursor, 10)
    assert [uid for _, uid in page2] == uids[2:] and cursor2 is None
    directory.remove_member(store, oid, uids[1])
    assert not directory.is_member(store, oid, uids[1])
    assert directory.user_org_ids(store, uids[1]) == []
    with pytest.raises(NotFound):
        directory.remove_member(store, oid, uids[1])
    directory.delete_org(store, oid)
    assert directory.get_org(store, oid) is None
    assert directory.user_org_ids(store, uids[0]) == []


# --- platform API ----------------------------------------------------------------------------


def test_platform_api_requires_the_key(client) -> None:
    resp = client.post("/internal/v1/users", json={"username": "x1"})
    assert resp.status_code == 401 and resp.get_json()["error"] == "unauthorized"
    resp = client.post(
        "/internal/v1/users", json={"username": "x1"}, headers={"Authorization": "Bearer nope"}
    )
    assert resp.status_code == 401


def test_user_crud_over_the_api(client, settings, store) -> None:
    h = auth(settings)
    resp = client.post(
        "/internal/v1/users",
        headers=h,
        json={
            "username": "carol",
            "password": "s3cret-pass",
            "nickname": "Carol",
            "avatar": "https://img.example/c.png",
            "email": "c@example.org",
        },
    )
    assert resp.status_code == 201
    user = resp.get_json()
    assert resp.headers["Location"] == f"/internal/v1/users/{user['id']}"
    assert "password" not in user and "password_hash" not in user
    assert client.get(f"/internal/v1/users/{user['id']}", headers=h).get_json()["nickname"] == "Carol"
    dup = client.post("/internal/v1/users", headers=h, json={"username": "CAROL"})
    assert dup.status_code == 409 and dup.get_json()["error"] == "conflict"
    patched = client.patch(f"/internal/v1/users/{user['id']}", headers=h, json={"nickname": "C."})
    assert patched.status_code == 200 and patched.get_json()["nickname"] == "C."
    assert client.delete(f"/internal/v1/users/{user['id']}", headers=h).status_code == 204
    assert client.get(f"/internal/v1/users/{user['id']}", headers=h).status_code == 404
    assert client.delete(f"/internal/v1/users/{user['id']}", headers=h).status_code == 404
    assert client.get("/internal/v1/users/usr_0123456789abcdef", headers=h).status_code == 404


def test_bad_user_lists_every_field_and_writes_nothing(client, settings, store) -> None:
    resp = client.post(
        "/internal/v1/users",
        headers=auth(settings),
        json={"username": "-bad", "password": "short", "avatar": "javascript:x", "role": "god"},
    )
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"] == "invalid_request"
    assert set(body["errors"]) == {"username", "password", "avatar", "role"}
    assert list(store.redis.scan_iter()) == ["b:schema"]  # only the schema stamp (tests/conftest.py)


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "{}", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_request"),
        (
            {"data": json.dumps({"username": "x" * 2_000_000}), "content_type": "application/json"},
            413,
            "payload_too_large",
        ),
    ],
)
def test_bad_bodies(client, settings, store, kwargs: dict[str, Any], status: int, code: str) -> None:
    resp = client.post("/internal/v1/users", headers=auth(settings), **kwargs)
    assert resp.status_code == status
    assert resp.get_json()["error"] == code
    assert list(store.redis.scan_iter()) == ["b:schema"]  # only the schema stamp (tests/conftest.py)


def test_org_and_membership_api(client, settings, store) -> None:
    h = auth(settings)
    org = client.post("/internal/v1/orgs", headers=h, json={"name": "Globex"}).get_json()
    uid = client.post("/internal/v1/users", headers=h, json={"username": "dave"}).get_json()["id"]
    base = f"/internal/v1/orgs/{org['id']}/members"
    put = client.put(
        f"{base}/{uid}", headers=h, json={"role": "sub_admin", "permissions": ["members.manage"]}
    )
    assert put.status_code == 201
    assert put.get_json() == {
        "user_id": uid,
        "org_id": org["id"],
        "role": "sub_admin",
        "permissions": ["members.manage"],
    }
    assert client.put(f"{base}/{uid}", headers=h, json={"role": "admin"}).status_code == 200
    bad = client.put(f"{base}/{uid}", headers=h, json={"role": "king", "permissions": ["x"]})
    assert bad.status_code == 400 and set(bad.get_json()["errors"]) == {"role", "permissions"}
    listing = client.get(f"{base}?limit=10", headers=h).get_json()
    assert listing == {
        "members": [{"user_id": uid, "seq": 1, "role": "admin", "permissions": []}],
        "next_cursor": None,
    }
    assert client.get(f"{base}?limit=0", headers=h).status_code == 400
    assert client.put(f"{base}/usr_0123456789abcdef", headers=h, json={"role": "member"}).status_code == 404
    assert client.delete(f"{base}/{uid}", headers=h).status_code == 204
    assert client.get(f"{base}/{uid}", headers=h).status_code == 404
    assert (
        client.patch(
            f"/internal/v1/orgs/{org['id']}", headers=h, json={"allow_member_mini_programs": False}
        ).get_json()["allow_member_mini_programs"]
        is False
    )
    assert client.delete(f"/internal/v1/orgs/{org['id']}", headers=h).status_code == 204
    assert client.get(f"/internal/v1/orgs/{org['id']}", headers=h).status_code == 404


def ndjson(*records: Any) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


def test_import_writes_everything(client, settings, store) -> None:
    oid = "org_00000000000000aa"
    body = ndjson(
        {"type": "org", "id": oid, "name": "Acme"},
        {"type": "user", "username": "ann", "password": "password-1"},
        {"type": "user", "id": "usr_00000000000000bb", "username": "ben"},
        {"type": "membership", "org_id": oid, "username": "ann", "role": "owner"},
        {"type": "membership", "org_id": oid, "user_id": "usr_00000000000000bb", "role": "member"},
    )
    resp = client.post(
        "/internal/v1/import", headers=auth(settings), data=body, content_type="application/x-ndjson"
    )
    assert resp.status_code == 200
    assert resp.get_json() == {"imported": {"users": 2, "orgs": 1, "memberships": 2, "departments": 0}}
    ann = directory.verify_password(store, "ann", "password-1")
    assert ann is not None and directory.member_role(store, oid, ann)["role"] == "owner"
    assert directory.is_member(store, oid, "usr_00000000000000bb")


def test_import_lists_every_bad_line_and_writes_nothing(client, settings, store) -> None:
    directory.create_user(store, {"username": "taken"})
    before = store.redis.dbsize()
    body = ndjson(
        {"type": "user", "username": "fine"},
        "{oops",
        {"type": "user", "username": "taken"},
        {"type": "robot"},
        {"type": "membership", "org_id": "org_00000000000000ff", "username": "ghost", "role": "member"},
        {"type": "user", "username": "FINE", "extra": 1},
    )
    resp = client.post(
        "/internal/v1/import", headers=auth(settings), data=body, content_type="application/x-ndjson"
    )
    assert resp.status_code == 400
    errors = resp.get_json()["errors"]
    assert set(errors) == {"2", "3", "4", "5", "6"}
    assert "_line" in errors["2"]
    assert errors["3"] == {"username": ["already taken"]}
    assert "type" in errors["4"]
    assert set(errors["5"]) == {"org_id", "username"}
    assert set(errors["6"]) == {"extra"}
    assert store.redis.dbsize() == before


def test_import_oversized_body_is_413_and_writes_nothing(client, settings, store) -> None:
    line = json.dumps({"type": "org", "name": "x" * 100}) + "\n"
    body = line * (settings.max_body_bytes // len(line) + 1)
    resp = client.post(
        "/internal/v1/import", headers=auth(settings), data=body, content_type="application/x-ndjson"
    )
    assert resp.status_code == 413 and resp.get_json()["error"] == "payload_too_large"
    assert list(store.redis.scan_iter()) == ["b:schema"]  # only the schema stamp (tests/conftest.py)


def test_import_wrong_content_type(client, settings, store) -> None:
    resp = client.post(
        "/internal/v1/import", headers=auth(settings), data="{}", content_type="application/json"
    )
    assert resp.status_code == 415 and resp.get_json()["error"] == "unsupported_media_type"
