"""Typed records (broker/core/records.py) against the hashes the domain services really write.

For each record type: ``from_hash(h).to_hash() == h`` on a hash written by a service (the Redis
layout does not move by a byte), and ``public()`` is exactly the dict the service returns.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest

from broker.apps import registry as apps
from broker.consent import grants, installations, org_policy
from broker.core import catalog as catalog_mod
from broker.core.hashing import keyed_hash
from broker.core.ids import ACCESS_PREFIX, REFRESH_PREFIX, new_token
from broker.core.records import App, DisclosureRecord, Grant, Installation, Membership, Org, User
from broker.directory import service as directory
from broker.gate.disclosure import Gate
from broker.storage import keys
from broker.tokens import service as tokens

APP_PAYLOAD = {
    "kind": "mini_program",
    "client_type": "public",
    "name": "Notes",
    "description": "Keeps your notes",
    "contact": "dev@example.com",
    "privacy_policy_url": "https://example.com/privacy",
    "redirect_uris": ["http://127.0.0.1:8765/callback", "https://notes.example/cb"],
    "scopes": ["openid", "profile"],
}


@pytest.fixture
def catalog(settings: Any) -> catalog_mod.Catalog:
    return catalog_mod.load(settings.scopes_dir)


def _user(store: Any, username: str = "alice", now: int = 1000) -> str:
    data = {"username": username, "nickname": username.title(), "email": f"{username}@example.com"}
    return str(directory.create_user(store, data, now=now)["id"])


def _round_trip(cls: Any, raw: dict[str, str]) -> Any:
    assert raw, "the service wrote nothing"
    record = cls.from_hash(raw)
    assert record.to_hash() == raw
    return record


def test_user_round_trip_and_public(store) -> None:
    created = directory.create_user(
        store, {"username": "alice", "nickname": "Alice", "email": "a@example.com"}, now=1000
    )
    uid = created["id"]
    raw = store.redis.hgetall(keys.user(uid))
    user = _round_trip(User, raw)
    expected = {
        "id": uid,
        "username": "alice",
        "nickname": "Alice",
        "avatar": "",
        "name": "",
        "email": "a@example.com",
        "mobile": "",
        "status": "active",
        "created_at": 1000,
        "updated_at": 1000,
    }
    assert user.public() == expected == created == directory.get_user(store, uid)
    assert user.password_hash == "" and user.created_at == 1000
    assert directory.get_users(store, [uid]) == {uid: expected}

    updated = directory.update_user(
        store, uid, {"nickname": "Al", "username": "alice2", "mobile": None}, now=1500
    )
    user = _round_trip(User, store.redis.hgetall(keys.user(uid)))
    assert (
        updated == user.public() == {**expected, "nickname": "Al", "username": "alice2", "updated_at": 1500}
    )

    directory.delete_user(store, uid, now=2000)
    tombstone = _round_trip(User, store.redis.hgetall(keys.user(uid)))
    assert tombstone.public() == {"id": uid, "status": "deleted", "deleted_at": "2000"}
    assert directory.get_user(store, uid) == tombstone.public()


def test_user_records_for_import_are_a_user_hash() -> None:
    raw = directory.user_records({"username": "bob", "password_hash": "h"}, "usr_0123456789abcdef", 7)
    assert raw == {
        "id": "usr_0123456789abcdef",
        "username": "bob",
        "nickname": "bob",
        "avatar": "",
        "name": "",
        "email": "",
        "mobile": "",
        "password_hash": "h",
        "status": "active",
        "created_at": "7",
        "updated_at": "7",
    }
    assert User.from_hash(raw).to_hash() == raw


def test_org_round_trip_and_public(store) -> None:
    created = directory.create_org(store, {"name": "Acme"}, now=1000)
    oid = created["id"]
    org = _round_trip(Org, store.redis.hgetall(keys.org(oid)))
    expected = {
        "id": oid,
        "name": "Acme",
        "allow_member_mini_programs": True,
        "allowed_apps": [],
        "blocked_apps": [],
        "created_at": 1000,
        "updated_at": 1000,
    }
    assert org.public() == expected == created == directory.get_org(store, oid)

    updated = directory.update_org(store, oid, {"allow_member_mini_programs": False}, now=1500)
    org = _round_trip(Org, store.redis.hgetall(keys.org(oid)))
    assert org.public() == {**expected, "allow_member_mini_programs": False, "updated_at": 1500} == updated
    assert store.redis.hget(keys.org(oid), "allow_member_mini_programs") == "0"
    # An org hash without the flag (written before it existed) allows mini-programs.
    assert Org.from_hash({"id": oid, "name": "Old"}).public() == {
        "id": oid,
        "name": "Old",
        "allow_member_mini_programs": True,
        "allowed_apps": [],
        "blocked_apps": [],
    }


def test_membership_round_trip_and_public(store) -> None:
    oid = directory.create_org(store, {"name": "Acme"}, now=1000)["id"]
    sub, member = _user(store, "sub"), _user(store, "mem")
    directory.add_member(store, oid, sub, "sub_admin", ["members.manage", "apps.manage", "apps.manage"])
    directory.add_member(store, oid, member, "member", ["apps.manage"])  # a member holds no permissions
    raw = store.redis.hgetall(keys.org_roles(oid))
    assert raw == {
        sub: '{"role":"sub_admin","permissions":["apps.manage","members.manage"]}',
        member: '{"role":"member","permissions":[]}',
    }
    for uid, value in raw.items():
        m = _round_trip(Membership, {uid: value})
        assert m.user_id == uid
        assert m.public() == directory.member_role(store, oid, uid)
    assert directory.member_role(store, oid, sub) == {
        "role": "sub_admin",
        "permissions": ["apps.manage", "members.manage"],
    }
    assert directory.member_roles(store, oid, [member, "usr_0000000000000000"]) == [
        {"role": "member", "permissions": []},
        None,
    ]
    assert directory.role_value("admin", ["x"]) == '{"role":"admin","permissions":[]}'


def test_app_round_trip_and_public(store, settings, catalog) -> None:
    dev = _user(store, "dev")
    record, secret, webhook_secret = apps.register_app(
        store, settings, catalog, {**APP_PAYLOAD, "developer_id": dev}
    )
    cid = record["client_id"]
    raw = store.redis.hgetall(keys.app(cid))
    assert raw["webhook_secret"].startswith("sealed:v1:") and secret is None  # sealed at rest
    assert apps.webhook_secret(store, settings, cid) == webhook_secret
    assert raw["redirect_uris"] == '["http://127.0.0.1:8765/callback", "https://notes.example/cb"]'
    assert raw["scopes"] == "openid profile"
    app = _round_trip(App, raw)
    now = record["created_at"]
    expected = {
        "client_id": cid,
        "name": "Notes",
        "description": "Keeps your notes",
        "kind": "mini_program",
        "client_type": "public",
        "developer_id": dev,
        "contact": "dev@example.com",
        "privacy_policy_url": "https://example.com/privacy",
        "redirect_uris": ["http://127.0.0.1:8765/callback", "https://notes.example/cb"],
        "scopes": ["openid", "profile"],
        "webhook_url": "",
        "post_logout_redirect_uris": [],
        "backchannel_logout_uri": "",
        "terms_of_service_url": "",
        "data_label": [],
        "status": "active",
        "review": "approved",
        "created_at": now,
        "updated_at": now,
    }
    assert isinstance(now, int)
    assert app.public() == expected == record == apps.get_app(store, cid)
    assert apps.list_apps(store, dev) == [expected]
    found = apps.app_and_secret_hashes(store, cid)
    assert found is not None and found[0]["scopes"] == ["openid", "profile"]
    assert found[0]["redirect_uris"] == expected["redirect_uris"]

    updated = apps.update_app(store, settings, catalog, cid, {"scopes": ["openid"], "description": "Notes"})
    assert store.redis.hget(keys.app(cid), "scopes") == "openid"
    assert updated["scopes"] == ["openid"] and updated["description"] == "Notes"
    apps.rotate_webhook_secret(store, settings, cid)
    app = _round_trip(App, store.redis.hgetall(keys.app(cid)))
    assert (app.webhook_secret_previous or "").startswith("sealed:v1:")
    assert app.webhook_secret_previous != raw["webhook_secret"]  # sealed again, for its own field
    assert app.public() == apps.get_app(store, cid)
    assert not any(k.startswith("webhook_secret") for k in app.public())


def _mini(store, settings, catalog) -> str:
    record, _, _ = apps.register_app(
        store, settings, catalog, {**APP_PAYLOAD, "developer_id": _user(store, "dev")}
    )
    return str(record["client_id"])


def test_grant_round_trip_and_public(store, settings, catalog) -> None:
    cid, uid = _mini(store, settings, catalog), _user(store)
    saved = grants.save_consent(
        store, settings, catalog, cid, uid, ["openid", "profile"], ["avatar"], "Sign in", "v1:1"
    )
    raw = store.redis.hgetall(keys.grant(cid, uid))
    assert raw["scopes"] == "openid profile" and raw["fields"] == "user_id avatar"
    grant = _round_trip(Grant, raw)
    assert saved is not None
    expected = {
        "id": saved["id"],
        "client_id": cid,
        "user_id": uid,
        "scopes": ["openid", "profile"],
        "fields": ["user_id", "avatar"],
        "purpose": "Sign in",
        "label": [],  # the app declared no data label
        "consent_version": "v1:1",
        "created_at": saved["created_at"],
        "updated_at": saved["created_at"],
    }
    assert grant.public() == expected == saved == grants.get_grant(store, cid, uid)
    assert grants.grants_of_user(store, uid) == [expected]

    narrowed = grants.revoke_scope(store, settings, catalog, cid, uid, "profile")
    grant = _round_trip(Grant, store.redis.hgetall(keys.grant(cid, uid)))
    assert narrowed is not None and narrowed["scopes"] == ["openid"] and narrowed["fields"] == ["user_id"]
    assert grant.public() == narrowed == grants.get_grant(store, cid, uid)
    assert grants.revoke_grant(store, settings, cid, uid) == narrowed


def test_installation_round_trip_and_public(store, settings, catalog) -> None:
    dev = _user(store, "dev")
    payload = {
        **APP_PAYLOAD,
        "developer_id": dev,
        "kind": "org_app",
        "client_type": "confidential",
        "redirect_uris": ["https://roster.example.com/cb"],
        "scopes": ["org.members.read"],
    }
    cid = apps.register_app(store, settings, catalog, payload)[0]["client_id"]
    oid = directory.create_org(store, {"name": "Acme"}, now=1000)["id"]
    installed = installations.install(store, cid, oid, installed_by=dev)
    raw = store.redis.hgetall(keys.installation(cid, oid))
    assert raw["enabled"] == "1" and raw["scopes"] == "org.members.read"
    inst = _round_trip(Installation, raw)
    expected = {
        "id": installed["id"],
        "client_id": cid,
        "org_id": oid,
        "scopes": ["org.members.read"],
        "fields": None,  # no field choice: every field of the scopes
        "enabled": True,
        "installed_by": dev,
        "created_at": installed["created_at"],
        "updated_at": installed["created_at"],
    }
    assert inst.public() == expected == installed == installations.get_installation(store, cid, oid)
    assert installations.list_org_installations(store, oid) == [expected]

    disabled = installations.disable(store, cid, oid)
    inst = _round_trip(Installation, store.redis.hgetall(keys.installation(cid, oid)))
    assert store.redis.hget(keys.installation(cid, oid), "enabled") == "0"
    assert inst.public() == disabled and disabled["enabled"] is False
    assert installations.remove(store, cid, oid) == disabled


def test_token_round_trip_and_lookup(store, settings, catalog) -> None:
    cid, uid = _mini(store, settings, catalog), _user(store)
    grant = grants.save_consent(
        store, settings, catalog, cid, uid, ["openid", "profile"], ["nickname"], "p", "v1"
    )
    assert grant is not None
    access, refresh = new_token(ACCESS_PREFIX, cid), new_token(REFRESH_PREFIX, cid)
    now = int(time.time())
    item = tokens.Issue(
        client_id=cid, kind="grant", subject=uid, grant_id=grant["id"], scopes="openid profile",
        access_token=access, access_expires_at=now + 600, refresh_token=refresh,
        refresh_expires_at=now + 6000, family="fam1", auth_time=now - 5,
    )  # fmt: skip
    tokens.issue(store, settings.token_hash_key, item)
    at_raw = store.redis.get(keys.access_token(cid, keyed_hash(settings.token_hash_key, access)))
    rt_raw = store.redis.get(keys.refresh_token(cid, keyed_hash(settings.token_hash_key, refresh)))
    issued_at = int(tokens.decode_token(at_raw)["issued_at"])
    # one packed string: kind (g), subject, grant id, scopes, issued_at, expires_at, family, auth_time
    assert at_raw == f"g|{uid}|{grant['id']}|openid profile|{issued_at}|{now + 600}|fam1|{now - 5}"
    assert tokens.encode_token(tokens.decode_token(at_raw)) == at_raw
    assert tokens.encode_token(tokens.decode_token(rt_raw)) == rt_raw
    assert tokens.decode_token(rt_raw)["expires_at"] == str(now + 6000)
    info = tokens.lookup_access_token(store, settings.token_hash_key, access)
    assert info == tokens.TokenInfo(
        client_id=cid, kind="grant", subject=uid, grant_id=grant["id"], scopes=("openid", "profile"),
        effective_scopes=("openid", "profile"), issued_at=issued_at, expires_at=now + 600,
        auth_time=now - 5, family="fam1", rotated_at=None, token_type="access_token",
    )  # fmt: skip

    # A rotated refresh token keeps rotated_at; a token issued without auth_time stores none.
    rotated = dataclasses.replace(
        item,
        access_token=new_token(ACCESS_PREFIX, cid),
        refresh_token=new_token(REFRESH_PREFIX, cid),
        auth_time=None,
    )
    rt_key = keys.refresh_token(cid, keyed_hash(settings.token_hash_key, refresh))
    tokens.issue(
        store, settings.token_hash_key, rotated, consume="refresh", consumed_key=rt_key, grace_seconds=60
    )
    rt_info = tokens.lookup_refresh_token(store, settings.token_hash_key, refresh)
    assert rt_info is not None and rt_info.rotated_at is not None
    new_at = keys.access_token(cid, keyed_hash(settings.token_hash_key, rotated.access_token))
    assert tokens.decode_token(store.redis.get(new_at))["auth_time"] == ""
    new_info = tokens.lookup_access_token(store, settings.token_hash_key, rotated.access_token)
    assert new_info is not None and new_info.auth_time is None and new_info.family == "fam1"


def _journal(store, cid: str) -> list[dict[str, str]]:
    from tests.support.ledger import journal_entries

    return [entry for _, entry in journal_entries(store, cid)]


def test_disclosure_records_round_trip(store, settings, catalog) -> None:
    cid, uid = _mini(store, settings, catalog), _user(store)
    dev = apps.get_app(store, cid)["developer_id"]  # type: ignore[index]
    grant = grants.save_consent(
        store, settings, catalog, cid, uid, ["openid", "profile"], ["nickname"], "p", "v1"
    )
    assert grant is not None
    gate = Gate(store, catalog, settings.token_hash_key, settings.pairwise_key)

    # Written in Python by the token endpoint's path: byte for byte.
    gate.record_issued(cid, developer_id=dev, user_id=uid, grant_id=grant["id"], fields=["user_id"],
                       endpoint="token", request_id="req-a")  # fmt: skip
    [issued] = _journal(store, cid)
    record = DisclosureRecord.from_hash(issued)
    assert record.to_hash() == issued
    body = json.loads(issued["r"])
    assert (
        record.public()
        == body
        == {
            "id": "req-a-1",
            "time": body["time"],
            "app": cid,
            "developer": dev,
            "audience": "individual",
            "org": None,
            "person": uid,
            "grant": grant["id"],
            "fields": ["user_id"],
            "endpoint": "token",
            "request_id": "req-a",
            "catalog_version": catalog.version,
        }
    )

    # Written by the gate's script from a template: the same record (cjson spells JSON its own way).
    access = new_token(ACCESS_PREFIX, cid)
    now = int(time.time())
    tokens.issue(store, settings.token_hash_key, tokens.Issue(
        client_id=cid, kind="grant", subject=uid, grant_id=grant["id"], scopes="openid profile",
        access_token=access, access_expires_at=now + 600, refresh_token=None, refresh_expires_at=0,
        family="f",
    ))  # fmt: skip
    gate.authorize_and_record(
        access, kind="grant", required_scope="openid", endpoint="userinfo", request_id="req-b"
    )
    scripted = _journal(store, cid)[1]
    record = DisclosureRecord.from_hash(scripted)
    assert json.loads(record.to_hash()["r"]) == json.loads(scripted["r"]) == record.public()
    assert record.fields == ("nickname", "user_id") and record.org is None and record.audience == "individual"
    assert DisclosureRecord.from_hash(record.to_hash()) == record

    # A ledger body (canonical JSON with its index) keeps what it adds, and lacks nothing it lacks.
    ledger_body = json.dumps({**body, "index": 7, "delivered": False}, sort_keys=True, separators=(",", ":"))
    again = DisclosureRecord.from_hash({"r": ledger_body})
    assert again.public() == json.loads(ledger_body)
    partial = DisclosureRecord.from_hash({"r": '{"id":"x","time":1,"app":"a","person":"p"}'})
    assert partial.public() == {"id": "x", "time": 1, "app": "a", "person": "p"}


def test_role_entries_parse_fail_closed(store) -> None:
    """The console's role check reads entries through Membership; anything unreadable is a member."""
    oid = directory.create_org(store, {"name": "Acme"}, now=1000)["id"]
    uid = _user(store)
    directory.add_member(store, oid, uid)
    member, sub = org_policy.Role("member"), org_policy.Role("sub_admin")
    cases = [
        ("not json", member),
        ('["admin"]', member),
        ('"admin"', member),
        ('{"role": "root", "permissions": ["apps.manage"]}', member),
        ('{"role": "sub_admin", "permissions": {"apps.manage": 1}}', sub),
        ('{"role": "sub_admin", "permissions": null}', sub),
        ('{"role": "sub_admin", "permissions": ["apps.manage", "root", 3]}', sub),
        ('{"role": "admin"}', org_policy.Role("admin")),
    ]
    for raw, expected in cases[:-2]:
        store.redis.hset(keys.org_roles(oid), uid, raw)
        assert org_policy.role_of(store, oid, uid) == expected, raw
    store.redis.hset(keys.org_roles(oid), uid, cases[-2][0])
    assert org_policy.role_of(store, oid, uid) == org_policy.Role("sub_admin", ("apps.manage",))
    store.redis.hset(keys.org_roles(oid), uid, cases[-1][0])
    assert org_policy.role_of(store, oid, uid) == cases[-1][1]
    # The console writes role entries with json.dumps' default spacing; they read the same.
    spaced = org_policy.encode("sub_admin", ["members.manage"])
    assert spaced == '{"role": "sub_admin", "permissions": ["members.manage"]}'
    assert Membership.from_hash({uid: spaced}) == Membership(uid, "sub_admin", ("members.manage",))
