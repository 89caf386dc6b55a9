"""Account deletion from the privacy center: grants end, every app that ever received data is told,
the person leaves their orgs, the directory keeps only a tombstone, sessions die, the ledger still
verifies (docs/retention.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import session

from broker.consent import grants
from broker.core.keyring import Keyring
from broker.core.pairwise import pairwise_id
from broker.ledger import checkpoints
from broker.ledger.commands import verify
from broker.storage import keys
from broker.web.interactions.session import current_user_id
from tests.support.client import bearer
from tests.support.factories import make_org, make_token, make_user, raw_app, raw_grant, raw_installation
from tests.support.ledger import journal_length, ledger_bodies
from tests.support.privacy import index_grant, index_installation, sequence
from tests.support.signin import session_sign_in


@pytest.fixture
def app(app: Any) -> Any:
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def _events(store: Any, client_id: str) -> list[dict[str, Any]]:
    return [json.loads(f["e"]) for _, f in store.redis.xrange(keys.outbox(client_id))]


@pytest.fixture
def world(client, store, settings) -> dict[str, Any]:
    uid = make_user(store, username="alice", nickname="Alice")
    store.redis.set(keys.username_index("alice"), uid)
    colleague = make_user(store, username="bob")
    oid = make_org(store, [uid, colleague], name="Acme")
    # A mini-program holding a grant, used once.
    mini = raw_app(store, name="Notes")
    gid = raw_grant(store, mini, uid, "openid profile", "user_id nickname avatar")
    index_grant(store, mini, uid)
    token = make_token(
        store, settings, mini, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
    )
    assert client.get("/v1/me", headers=bearer(token)).status_code == 200
    # An app that received data once, its grant since revoked: it is only in the ledger.
    past = raw_app(store, name="Old")
    pgid = raw_grant(store, past, uid, "openid", "user_id")
    index_grant(store, past, uid)
    ptoken = make_token(store, settings, past, kind="grant", subject=uid, grant_id=pgid, scopes="openid")
    assert client.get("/v1/me", headers=bearer(ptoken)).status_code == 200
    grants.revoke_grant(store, settings, past, uid)
    # An org app installed in the person's org, which read the members.
    org_app = raw_app(store, kind="org_app", name="Roster")
    iid = raw_installation(store, org_app, oid)
    index_installation(store, org_app, oid)
    otoken = make_token(
        store, settings, org_app, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    assert client.get(f"/v1/orgs/{oid}/members", headers=bearer(otoken)).status_code == 200
    sequence(store, settings)
    return {
        "uid": uid,
        "oid": oid,
        "mini": mini,
        "past": past,
        "org_app": org_app,
        "token": token,
        "otoken": otoken,
        "colleague": colleague,
    }


def test_delete_page_needs_the_username(client, store, world) -> None:
    session_sign_in(client, world["uid"])
    page = client.get("/privacy/delete")
    assert page.status_code == 200
    assert "Type your username (alice) to confirm" in page.get_data(as_text=True)
    wrong = client.post("/privacy/delete", data={"username": "bob"})
    assert wrong.status_code == 400
    assert "The username does not match." in wrong.get_data(as_text=True)
    assert store.redis.hget(keys.user(world["uid"]), "status") == "active"
    assert store.redis.exists(keys.grant(world["mini"], world["uid"])) == 1


def test_deletion_effects(app, client, store, settings, world) -> None:
    uid, oid, mini, past, org_app = world["uid"], world["oid"], world["mini"], world["past"], world["org_app"]
    old_session = app.test_client()
    session_sign_in(old_session, uid)
    session_sign_in(client, uid)
    ledger_before = ledger_bodies(store)

    response = client.post("/privacy/delete", data={"username": "alice"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/privacy/deleted")
    assert "deleted" in client.get(response.headers["Location"]).get_data(as_text=True)

    # Grants gone; the token answers 401 and nothing more is recorded.
    assert store.redis.exists(keys.grant(mini, uid), keys.user_grants(uid)) == 0
    assert client.get("/v1/me", headers=bearer(world["token"])).status_code == 401
    assert journal_length(store, mini) == 0

    # Every app that ever received data is told, by the id it knows.
    mini_events = _events(store, mini)
    assert [e["type"] for e in mini_events][-2:] == ["grant.revoked", "user.deleted"]
    assert mini_events[-1]["data"] == {"user_id": pairwise_id(settings.pairwise_key, mini, uid)}
    assert [e["type"] for e in _events(store, past)] == [
        "grant.revoked",
        "deletion.requested",
        "user.deleted",
    ]  # revoked before, then deleted
    assert _events(store, past)[-1]["data"]["user_id"] == pairwise_id(settings.pairwise_key, past, uid)
    [org_event] = _events(store, org_app)
    assert org_event["type"] == "user.deleted"
    assert org_event["data"] == {
        "user_id": pairwise_id(settings.pairwise_key, org_app, uid, oid),
        "org_id": oid,
    }

    # They left the org; the org keeps its other member.
    assert store.redis.zscore(keys.org_members(oid), uid) is None
    assert store.redis.hexists(keys.org_roles(oid), uid) == 0
    assert store.redis.exists(keys.user_orgs(uid)) == 0
    assert store.redis.zscore(keys.org_members(oid), world["colleague"]) is not None
    members = client.get(f"/v1/orgs/{oid}/members", headers=bearer(world["otoken"])).get_json()
    assert len(members["members"]) == 1

    # Only a tombstone is left in the directory; the username is free.
    record = store.redis.hgetall(keys.user(uid))
    assert set(record) == {"id", "status", "deleted_at"}
    assert record["status"] == "deleted"
    assert store.redis.exists(keys.username_index("alice")) == 0

    # Sessions: this one was signed out, an older one is refused too.
    assert client.get("/privacy").status_code == 303
    assert old_session.get("/privacy/v1/apps").status_code == 401
    with app.test_request_context("/"):
        session["uid"] = uid
        assert current_user_id() is None

    # The ledger keeps its records (pseudonymous now) and still verifies.
    sequence(store, settings)  # the colleague's record from the members call above
    after = ledger_bodies(store)
    assert {k: after[k] for k in ledger_before} == ledger_before
    assert sum(json.loads(v)["person"] == uid for v in after.values()) == 3
    summary = verify(store, checkpoints.public_jwks(Keyring(settings.signing_keys_file)))
    assert summary["records"] == len(ledger_before) + 1 == 5


def test_json_deletion_needs_the_username_and_signs_out(client, store, world) -> None:
    session_sign_in(client, world["uid"])
    refused = client.post("/privacy/v1/account/delete", json={"confirm_username": "nope"})
    assert refused.status_code == 400
    assert refused.get_json()["errors"] == {"confirm_username": ["must equal your username"]}
    response = client.post("/privacy/v1/account/delete", json={"confirm_username": "alice"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["deleted"] is True
    assert body["revoked"] == [world["mini"]]
    assert {(n["client_id"], n["org_id"]) for n in body["notified"]} == {
        (world["mini"], None),
        (world["past"], None),
        (world["org_app"], world["oid"]),
    }
    assert body["orgs_left"] == [world["oid"]]
    assert client.get("/privacy/v1/apps").status_code == 401


def test_a_deleted_app_still_in_the_ledger_gets_no_outbox(client, store, world) -> None:
    """Nothing would ever deliver or trim the outbox of a deleted app (issue 12 item 3)."""
    from broker.apps import registry as apps_svc

    apps_svc.delete_app(store, world["past"])
    assert store.redis.exists(keys.outbox(world["past"])) == 0
    session_sign_in(client, world["uid"])
    response = client.post("/privacy/v1/account/delete", json={"confirm_username": "alice"})
    assert response.status_code == 200
    assert {(n["client_id"], n["org_id"]) for n in response.get_json()["notified"]} == {
        (world["mini"], None),
        (world["org_app"], world["oid"]),
    }
    assert store.redis.exists(keys.outbox(world["past"])) == 0
    assert _events(store, world["mini"])[-1]["type"] == "user.deleted"


def test_a_consent_given_while_deleting_does_not_survive(client, store, settings, world, monkeypatch) -> None:
    from broker.consent import person as center

    late = raw_app(store, name="Late")
    real = center.pairwise_id
    raced: list[str] = []

    def consent_meanwhile(*args: Any, **kwargs: Any) -> str:
        if not raced:  # step 2 runs after step 1 revoked the grants: a new consent lands now
            raced.append(raw_grant(store, late, world["uid"], "openid", "user_id"))
            index_grant(store, late, world["uid"])
        return real(*args, **kwargs)

    monkeypatch.setattr(center, "pairwise_id", consent_meanwhile)
    session_sign_in(client, world["uid"])
    assert client.post("/privacy/delete", data={"username": "alice"}).status_code == 303
    assert raced
    assert store.redis.exists(keys.grant(late, world["uid"]), keys.user_grants(world["uid"])) == 0
    assert [e["type"] for e in _events(store, late)] == ["grant.revoked"]
    assert store.redis.exists(keys.receipts_index(world["uid"])) == 0


def test_platform_api_deletion_is_the_same_deletion(client, store, settings) -> None:
    """DELETE /internal/v1/users/<id> ends grants at once and tells the apps, like the privacy center."""
    import json as _json

    from broker.core.pairwise import pairwise_id
    from broker.storage import keys as _keys
    from tests.support.factories import make_token, make_user, raw_app, raw_grant
    from tests.support.ledger import journal_records

    uid = make_user(store, username="leaver")
    store.redis.set(_keys.username_index("leaver"), uid)
    cid = raw_app(store)
    gid = raw_grant(store, cid, uid, "openid profile", "user_id nickname avatar")
    store.redis.sadd(_keys.user_grants(uid), cid)
    token = make_token(store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="openid profile")
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/me", headers=bearer).status_code == 200
    gone = client.delete(
        f"/internal/v1/users/{uid}", headers={"Authorization": f"Bearer {settings.platform_api_key}"}
    )
    assert gone.status_code == 204
    assert client.get("/v1/me", headers=bearer).status_code == 401
    assert len(journal_records(store, cid)) == 1
    events = [_json.loads(f["e"]) for _, f in store.redis.xrange(_keys.outbox(cid))]
    assert [e["type"] for e in events] == ["grant.revoked", "user.deleted"]
    assert events[1]["data"] == {"user_id": pairwise_id(settings.pairwise_key, cid, uid)}
    assert store.redis.hgetall(_keys.user(uid)).keys() == {"id", "status", "deleted_at"}
    assert store.redis.get(_keys.username_index("leaver")) is None
