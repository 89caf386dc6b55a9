"""Consent that follows the text (issue 14, item 6): when what a scope says changes after the person
agreed, the next authorization asks again; declining shrinks the grant to what did not change; the
version agreed to is on the grant and every receipt."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from broker.consent import grants
from broker.core import catalog as catalog_mod
from broker.storage import keys
from tests.support.apps import outbox_events
from tests.support.flows import setup_authorize
from tests.support.oauth import authorize, authorize_params, pkce_pair, query


def _start(client: Any, cid: str) -> Any:
    return authorize(client, authorize_params(cid, pkce_pair()[1]))


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _text_changed(store: Any, settings: Any, cid: str, uid: str, scope: str) -> None:
    """What the person agreed to for ``scope`` differs from the catalog's text today."""
    catalog = catalog_mod.load(settings.scopes_dir)
    versions = {s: catalog.scope_version(s) for s in ("openid", "profile")}
    versions[scope] = "000000000000"
    recorded = f"{grants.CONSENT_TEXT_VERSION}:" + ",".join(f"{s}@{v}" for s, v in sorted(versions.items()))
    store.redis.hset(keys.grant(cid, uid), "consent_version", recorded)


def test_an_unchanged_consent_is_not_asked_again(client, store, settings) -> None:
    cid, _, _ = setup_authorize(client, store, settings)
    assert "code" in query(_start(client, cid).headers["Location"])


def test_a_changed_scope_is_asked_again_and_declining_keeps_only_what_did_not_change(
    client, store, settings
) -> None:
    cid, _, uid = setup_authorize(client, store, settings)
    _text_changed(store, settings, cid, uid, "profile")
    started = _start(client, cid)
    assert started.status_code == 302 and urlsplit(started.headers["Location"]).path.startswith("/consent/")
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert 'id="reconsent"' in page and "keeps only what did not change" in page
    declined = client.post(started.headers["Location"], data={"csrf_token": _csrf(page), "action": "deny"})
    assert declined.status_code == 303
    back = client.get(declined.headers["Location"])
    assert query(back.headers["Location"])["error"] == "access_denied"
    grant = grants.get_grant(store, cid, uid)
    assert grant is not None and grant["scopes"] == ["openid"] and grant["fields"] == ["user_id"]
    assert [e["type"] for e in outbox_events(store, cid)][-2:] == ["grant.updated", "deletion.requested"]


def test_agreeing_again_records_the_new_version_and_the_next_authorization_goes_through(
    client, store, settings
) -> None:
    cid, _, uid = setup_authorize(client, store, settings)
    _text_changed(store, settings, cid, uid, "profile")
    started = _start(client, cid)
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    approved = client.post(
        started.headers["Location"],
        data={"csrf_token": _csrf(page), "action": "approve", "field": ["nickname", "avatar"]},
    )
    assert "code" in query(client.get(approved.headers["Location"]).headers["Location"])
    catalog = catalog_mod.load(settings.scopes_dir)
    stored = grants.get_grant(store, cid, uid)
    assert stored is not None and grants.changed_scopes(catalog, stored) == []
    assert f"profile@{catalog.scope_version('profile')}" in stored["consent_version"]
    assert "code" in query(_start(client, cid).headers["Location"])  # not asked a third time


def test_a_grant_from_before_per_scope_versions(client, store, settings) -> None:
    """``<catalog version>:<page text version>``: unchanged if the whole catalog still is."""
    cid, _, uid = setup_authorize(client, store, settings)
    catalog = catalog_mod.load(settings.scopes_dir)
    store.redis.hset(
        keys.grant(cid, uid), "consent_version", f"{catalog.version}:{grants.CONSENT_TEXT_VERSION}"
    )
    assert "code" in query(_start(client, cid).headers["Location"])
    store.redis.hset(
        keys.grant(cid, uid), "consent_version", f"0123456789abcdef:{grants.CONSENT_TEXT_VERSION}"
    )
    assert urlsplit(_start(client, cid).headers["Location"]).path.startswith("/consent/")
