"""App registry: validation, secrets shown once, rotation overlap, suspension, deletion."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest

from broker.apps import registry as apps
from broker.consent import grants, installations
from broker.core import catalog as catalog_mod
from broker.core.hashing import keyed_hash
from broker.errors import Conflict, ValidationFailed
from broker.storage import keys
from tests.support.apps import mini_payload, org_payload, outbox_events
from tests.support.factories import make_org, make_token, make_user


@pytest.fixture
def catalog(settings: Any) -> catalog_mod.Catalog:
    return catalog_mod.load(settings.scopes_dir)


def _everything_stored(store) -> str:
    """Every key, hash field and value in Redis as text, to look for leaked secrets."""
    parts: list[str] = []
    for key in store.redis.scan_iter():
        parts.append(key)
        kind = store.redis.type(key)
        if kind == "hash":
            parts.extend(x for kv in store.redis.hgetall(key).items() for x in kv)
        elif kind == "string":
            parts.append(store.redis.get(key))
        elif kind in {"set"}:
            parts.extend(store.redis.smembers(key))
        elif kind == "zset":
            parts.extend(store.redis.zrange(key, 0, -1))
    return "\n".join(parts)


def test_register_mini_program_public_has_no_secret(store, settings, catalog) -> None:
    dev = make_user(store)
    record, secret, whsec = apps.register_app(store, settings, catalog, mini_payload(dev))
    assert record["client_id"].startswith("app_") and len(record["client_id"]) == 20
    assert secret is None
    assert whsec.startswith("whsec_")  # Standard Webhooks form
    assert apps.get_app(store, record["client_id"])["scopes"] == ["openid", "profile"]
    assert store.redis.zscore(keys.apps_all(), record["client_id"]) is not None
    assert store.redis.sismember(keys.developer_apps(dev), record["client_id"])
    assert store.redis.hlen(keys.app_secrets(record["client_id"])) == 0


def test_confidential_secret_is_stored_only_as_keyed_hash(store, settings, catalog) -> None:
    dev = make_user(store)
    record, secret, _ = apps.register_app(store, settings, catalog, org_payload(dev))
    assert secret is not None and secret.startswith("brk_cs_")
    stored = store.redis.hgetall(keys.app_secrets(record["client_id"]))
    assert list(stored) == [keyed_hash(settings.token_hash_key, secret)]
    assert json.loads(next(iter(stored.values())))["expires"] is None
    assert secret not in _everything_stored(store)
    assert apps.verify_secret(store, settings, record["client_id"], secret)
    assert not apps.verify_secret(store, settings, record["client_id"], secret + "x")
    assert apps.get_app(store, record["client_id"]).get("client_secret") is None


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"kind": "widget"}, "kind", "must be one of"),
        ({"client_type": "secretive"}, "client_type", "must be one of"),
        ({"privacy_policy_url": "http://example.com/p"}, "privacy_policy_url", "must use https"),
        ({"redirect_uris": []}, "redirect_uris", "at least one redirect URI"),
        ({"redirect_uris": ["http://example.com/cb"]}, "redirect_uris", "must use https"),
        ({"redirect_uris": ["https://example.com/cb#frag"]}, "redirect_uris", "fragment"),
        ({"redirect_uris": ["/relative"]}, "redirect_uris", "absolute"),
        ({"scopes": ["profile"]}, "scopes", "must request openid"),
        ({"webhook_url": "ftp://example.com"}, "webhook_url", "absolute https"),
        ({"developer_id": "usr_0000000000000000"}, "developer_id", "no active user"),
        ({"name": ""}, "name", "is required"),
    ],
)
def test_registration_names_each_bad_field(store, settings, catalog, override, field, message) -> None:
    dev = make_user(store)
    with pytest.raises(ValidationFailed) as info:
        apps.register_app(store, settings, catalog, {**mini_payload(dev), **override})
    assert info.value.code == "invalid_request"
    assert field in info.value.fields
    assert any(message in m for m in info.value.fields[field])
    assert store.redis.zcard(keys.apps_all()) == 0


def test_loopback_http_redirects_are_allowed(store, settings, catalog) -> None:
    dev = make_user(store)
    uris = ["http://127.0.0.1:9/cb", "http://[::1]:9/cb", "http://localhost/cb"]
    record, _, _ = apps.register_app(store, settings, catalog, mini_payload(dev, redirect_uris=uris))
    assert record["redirect_uris"] == uris


def test_org_app_must_be_confidential_and_use_organization_scopes(store, settings, catalog) -> None:
    dev = make_user(store)
    with pytest.raises(ValidationFailed) as info:
        apps.register_app(
            store, settings, catalog, org_payload(dev, client_type="public", scopes=["profile"])
        )
    assert info.value.code == "invalid_scope"
    assert "client_type" in info.value.fields and "scopes" in info.value.fields


def test_unknown_scope_is_invalid_scope(store, settings, catalog) -> None:
    dev = make_user(store)
    with pytest.raises(apps.InvalidScope) as info:
        apps.register_app(store, settings, catalog, mini_payload(dev, scopes=["openid", "email"]))
    assert info.value.code == "invalid_scope"
    assert info.value.fields == {"scopes": ["unknown scope(s): email"]}


def test_production_webhook_must_be_https(store, settings, catalog) -> None:
    dev = make_user(store)
    development = replace(settings, webhook_allow_private=True)  # loopback webhooks allowed explicitly
    apps.register_app(store, development, catalog, mini_payload(dev, webhook_url="http://127.0.0.1:9/h"))
    prod = replace(development, env="production")
    with pytest.raises(ValidationFailed) as info:
        apps.register_app(store, prod, catalog, mini_payload(dev, webhook_url="http://127.0.0.1:9/h"))
    assert "webhook_url" in info.value.fields


def test_rotation_keeps_old_secret_until_overlap_ends(store, settings, catalog) -> None:
    dev = make_user(store)
    record, old, _ = apps.register_app(store, settings, catalog, org_payload(dev))
    cid = record["client_id"]
    new, until = apps.rotate_secret(store, settings, cid)
    assert new != old and until >= int(time.time()) + settings.secret_overlap_seconds - 1
    assert apps.verify_secret(store, settings, cid, old)
    assert apps.verify_secret(store, settings, cid, new)
    short = replace(settings, secret_overlap_seconds=0)
    newer, _ = apps.rotate_secret(store, short, cid)
    assert not apps.verify_secret(store, settings, cid, new)  # expired at once (overlap 0)
    assert apps.verify_secret(store, settings, cid, newer)
    assert apps.verify_secret(store, settings, cid, old)  # its earlier expiry was kept
    meta = {h: json.loads(v) for h, v in store.redis.hgetall(keys.app_secrets(cid)).items()}
    assert meta[keyed_hash(settings.token_hash_key, newer)]["expires"] is None


def test_public_client_cannot_rotate_secret(store, settings, catalog) -> None:
    dev = make_user(store)
    record, _, _ = apps.register_app(store, settings, catalog, mini_payload(dev))
    with pytest.raises(Conflict):
        apps.rotate_secret(store, settings, record["client_id"])


def test_webhook_secret_rotation(store, settings, catalog) -> None:
    dev = make_user(store)
    record, _, whsec = apps.register_app(store, settings, catalog, mini_payload(dev))
    assert apps.webhook_secret(store, settings, record["client_id"]) == whsec
    fresh = apps.rotate_webhook_secret(store, settings, record["client_id"])
    assert fresh != whsec and apps.webhook_secret(store, settings, record["client_id"]) == fresh
    stored = store.redis.hgetall(keys.app(record["client_id"]))
    assert stored["webhook_secret_previous"].startswith("sealed:v1:")  # both sign during the overlap
    assert whsec not in stored.values()  # sealed at rest
    assert int(stored["webhook_secret_previous_expires"]) > time.time()
    assert not any(k.startswith("webhook_secret") for k in apps.get_app(store, record["client_id"]))


def test_suspend_and_restore_change_status_and_emit_events(store, settings, catalog) -> None:
    dev = make_user(store)
    record, _, _ = apps.register_app(store, settings, catalog, mini_payload(dev))
    cid = record["client_id"]
    assert apps.suspend_app(store, cid)["status"] == "suspended"
    with pytest.raises(Conflict):
        apps.suspend_app(store, cid)
    assert apps.restore_app(store, cid)["status"] == "active"
    assert [e["type"] for e in outbox_events(store, cid)] == ["app.suspended", "app.restored"]
    assert all(e["app"] == cid for e in outbox_events(store, cid))


def test_update_app_validates_and_rejects_fixed_fields(store, settings, catalog) -> None:
    dev = make_user(store)
    record, _, _ = apps.register_app(store, settings, catalog, mini_payload(dev))
    cid = record["client_id"]
    updated = apps.update_app(store, settings, catalog, cid, {"name": "Notes 2", "scopes": ["openid"]})
    assert updated["name"] == "Notes 2" and updated["scopes"] == ["openid"]
    with pytest.raises(ValidationFailed) as info:
        apps.update_app(
            store, settings, catalog, cid, {"kind": "org_app", "redirect_uris": ["http://x.com/"]}
        )
    assert set(info.value.fields) == {"kind", "redirect_uris"}
    assert apps.get_app(store, cid)["kind"] == "mini_program"


def test_delete_app_revokes_everything(store, settings, catalog) -> None:
    dev = make_user(store)
    uid = make_user(store, nickname="Bob")
    org = make_org(store)
    mini, _, _ = apps.register_app(store, settings, catalog, mini_payload(dev))
    org_app, _, _ = apps.register_app(store, settings, catalog, org_payload(dev))
    grant = grants.save_consent(store, settings, catalog, mini["client_id"], uid, ["openid"], [], "p", "v")
    token = make_token(store, settings, mini["client_id"], kind="grant", subject=uid, grant_id=grant["id"],
                       scopes="openid")  # fmt: skip
    token_key = keys.access_token(mini["client_id"], keyed_hash(settings.token_hash_key, token))
    assert store.redis.exists(token_key)
    store.redis.xadd(keys.journal(mini["client_id"], "00"), {"r": "{}"})
    installations.install(store, org_app["client_id"], org)
    for cid in (mini["client_id"], org_app["client_id"]):
        apps.delete_app(store, cid)
        assert apps.get_app(store, cid) is None
        assert store.redis.zscore(keys.apps_all(), cid) is None
        assert not store.redis.sismember(keys.developer_apps(dev), cid)
    assert not store.redis.exists(token_key)
    assert not store.redis.exists(keys.grant(mini["client_id"], uid))
    assert store.redis.smembers(keys.user_grants(uid)) == set()
    assert store.redis.smembers(keys.org_installations(org)) == set()
    remaining = set(store.redis.scan_iter(match=f"{keys.app_tag(mini['client_id'])}:*"))
    assert remaining == {keys.journal(mini["client_id"], "00")}  # disclosures still go to the ledger
