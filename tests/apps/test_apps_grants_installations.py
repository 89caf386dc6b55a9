"""Grants (merge, revoke_scope, revoke) and installations (lifecycle) with their outbox events."""

from __future__ import annotations

from typing import Any

import pytest

from broker.apps import registry as apps
from broker.consent import grants, installations
from broker.core import catalog as catalog_mod
from broker.core.hashing import keyed_hash
from broker.core.pairwise import pairwise_id
from broker.errors import Conflict, NotFound, ValidationFailed
from broker.storage import keys
from tests.support.apps import mini_payload, org_payload, outbox_events
from tests.support.factories import make_org, make_token, make_user
from tests.support.tokens import usable


@pytest.fixture
def catalog(settings: Any) -> catalog_mod.Catalog:
    return catalog_mod.load(settings.scopes_dir)


@pytest.fixture
def mini(store, settings, catalog) -> str:
    record, _, _ = apps.register_app(store, settings, catalog, mini_payload(make_user(store, nickname="Dev")))
    return str(record["client_id"])


def _token(store, settings, client_id: str, grant_id: str, kind: str = "grant", subject: str = "") -> str:
    """A token stored by the token service under ``grant_id``; returns its key."""
    token = make_token(
        store, settings, client_id, kind=kind, subject=subject, grant_id=grant_id, scopes="openid"
    )
    return keys.access_token(client_id, keyed_hash(settings.token_hash_key, token))


def test_first_consent_creates_grant_with_required_fields(store, settings, catalog, mini) -> None:
    uid = make_user(store)
    grant = grants.save_consent(
        store, settings, catalog, mini, uid, ["openid", "profile"], ["nickname"], "Sign in", "v1:1"
    )
    assert grant is not None and grant["id"].startswith("gr_")
    assert grant["scopes"] == ["openid", "profile"]
    assert grant["fields"] == ["user_id", "nickname"]  # user_id is required by openid
    stored = store.redis.hgetall(keys.grant(mini, uid))
    assert stored["fields"] == "user_id nickname" and stored["consent_version"] == "v1:1"
    assert store.redis.sismember(keys.app_grants(mini), uid)
    assert store.redis.sismember(keys.user_grants(uid), mini)
    [event] = outbox_events(store, mini)
    assert event["type"] == "grant.created"
    assert event["data"]["user_id"] == pairwise_id(settings.pairwise_key, mini, uid)
    assert uid not in str(event)


def test_reconsent_merges_and_keeps_id(store, settings, catalog, mini) -> None:
    uid = make_user(store)
    first = grants.save_consent(store, settings, catalog, mini, uid, ["openid"], [], "p", "v1")
    second = grants.save_consent(store, settings, catalog, mini, uid, ["profile"], ["avatar"], "p", "v2")
    assert second["id"] == first["id"] and second["created_at"] == first["created_at"]
    assert second["scopes"] == ["openid", "profile"]
    assert second["fields"] == ["user_id", "avatar"]
    assert second["consent_version"] == "v2"
    assert [e["type"] for e in outbox_events(store, mini)] == ["grant.created", "grant.updated"]


def test_unticking_every_optional_field_of_a_scope_drops_the_scope(store, settings, catalog, mini) -> None:
    uid = make_user(store)
    grant = grants.save_consent(store, settings, catalog, mini, uid, ["openid", "profile"], [], "p", "v")
    assert grant["scopes"] == ["openid"] and grant["fields"] == ["user_id"]


def test_consent_rejects_foreign_fields_and_scopes(store, settings, catalog, mini) -> None:
    uid = make_user(store)
    with pytest.raises(ValidationFailed) as info:
        grants.save_consent(
            store, settings, catalog, mini, uid, ["openid", "org.members.read"], ["email"], "p", "v"
        )
    assert set(info.value.fields) == {"scopes", "fields"}
    assert not store.redis.exists(keys.grant(mini, uid))
    assert store.redis.xlen(keys.outbox(mini)) == 0


def test_revoke_scope_shrinks_then_revokes(store, settings, catalog, mini) -> None:
    uid = make_user(store)
    grant = grants.save_consent(
        store, settings, catalog, mini, uid, ["openid", "profile"], ["nickname", "avatar"], "p", "v"
    )
    token = _token(store, settings, mini, grant["id"], subject=uid)
    after = grants.revoke_scope(store, settings, catalog, mini, uid, "profile")
    assert after["scopes"] == ["openid"] and after["fields"] == ["user_id"]
    assert usable(store, token)  # effective scopes narrow through the grant; the token lives
    with pytest.raises(NotFound):
        grants.revoke_scope(store, settings, catalog, mini, uid, "profile")
    assert grants.revoke_scope(store, settings, catalog, mini, uid, "openid") is None
    assert not store.redis.exists(keys.grant(mini, uid))
    assert not usable(store, token)  # the grant is gone: its token fails at once (its key expires)
    revoked = [e for e in outbox_events(store, mini) if e["type"] == "grant.revoked"][-1]
    assert revoked["data"]["scopes"] == ["openid"]


def test_revoke_grant_ends_its_tokens_and_indexes(store, settings, catalog, mini) -> None:
    uid = make_user(store)
    other = make_user(store, nickname="Other")
    grant = grants.save_consent(store, settings, catalog, mini, uid, ["openid"], [], "p", "v")
    kept = grants.save_consent(store, settings, catalog, mini, other, ["openid"], [], "p", "v")
    tokens = [_token(store, settings, mini, grant["id"], subject=uid) for _ in range(3)]
    other_token = _token(store, settings, mini, kept["id"], subject=other)
    revoked = grants.revoke_grant(store, settings, mini, uid)
    assert revoked["id"] == grant["id"]
    assert not any(usable(store, t) for t in tokens)
    assert usable(store, other_token)
    assert not store.redis.sismember(keys.app_grants(mini), uid)
    assert not store.redis.sismember(keys.user_grants(uid), mini)
    assert grants.revoke_grant(store, settings, mini, uid) is None
    event = [e for e in outbox_events(store, mini) if e["type"] == "grant.revoked"][-1]
    assert event["data"] == {"user_id": pairwise_id(settings.pairwise_key, mini, uid), "scopes": ["openid"]}


def test_installation_lifecycle_and_events(store, settings, catalog) -> None:
    dev = make_user(store)
    org = make_org(store)
    record, _, _ = apps.register_app(store, settings, catalog, org_payload(dev))
    cid = record["client_id"]
    inst = installations.install(store, cid, org, installed_by=dev)
    assert inst["id"].startswith("in_") and inst["enabled"] is True
    assert store.redis.sismember(keys.org_installations(org), cid)
    assert store.redis.sismember(keys.app_installations(cid), org)
    with pytest.raises(Conflict):
        installations.install(store, cid, org)
    token = _token(store, settings, cid, inst["id"], kind="installation", subject=org)
    assert installations.disable(store, cid, org)["enabled"] is False
    assert installations.disable(store, cid, org)["enabled"] is False  # idempotent, no second event
    assert installations.enable(store, cid, org)["enabled"] is True
    removed = installations.remove(store, cid, org)
    assert removed["id"] == inst["id"]
    assert not usable(store, token)
    assert not store.redis.exists(keys.installation(cid, org))
    assert not store.redis.sismember(keys.org_installations(org), cid)
    events = outbox_events(store, cid)
    assert [e["type"] for e in events] == [
        "installation.installed",
        "installation.disabled",
        "installation.enabled",
        "installation.removed",
    ]
    assert all(e["data"]["org_id"] == org for e in events)
    with pytest.raises(NotFound):
        installations.remove(store, cid, org)


def test_installation_scopes_must_be_a_subset(store, settings, catalog) -> None:
    dev = make_user(store)
    org = make_org(store)
    record, _, _ = apps.register_app(store, settings, catalog, org_payload(dev))
    with pytest.raises(ValidationFailed) as info:
        installations.install(store, record["client_id"], org, ["org.members.read", "profile"])
    assert info.value.fields == {"scopes": ["not requested by the app: profile"]}
    assert not store.redis.exists(keys.installation(record["client_id"], org))
    with pytest.raises(NotFound):
        installations.install(store, record["client_id"], "org_ffffffffffffffff")
