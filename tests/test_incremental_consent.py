"""Incremental consent (issue 14, item 5): the ``grant_url`` of an ``insufficient_scope`` answer is a
privacy-center page where the person adds the missing scope to the grant they hold, for any client
kind; the app is told (``grant.updated``) and its next token carries the scope."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from broker.consent import grants
from tests.support.apps import outbox_events
from tests.support.factories import make_app, make_grant, make_token, make_user
from tests.support.signin import session_sign_in


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_a_person_follows_the_grant_url_and_adds_the_missing_scope(client, store, settings) -> None:
    cid, _ = make_app(store, settings, client_type="public", name="Pocket Notes")
    alice = make_user(store, username="alice")
    gid = make_grant(store, settings, cid, alice, "profile", "nickname avatar")
    token = make_token(store, settings, cid, kind="grant", subject=alice, grant_id=gid, scopes="profile")
    refused = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    url = urlsplit(refused.get_json()["grant_url"])
    path = f"{url.path}?{url.query}"

    session_sign_in(client, alice)
    page = client.get(path)
    assert page.status_code == 200 and "Pocket Notes" in page.get_data(as_text=True)
    added = client.post(path, data={"csrf_token": _csrf(page.get_data(as_text=True)), "action": "approve"})
    assert added.status_code == 303
    grant = grants.get_grant(store, cid, alice)
    assert grant is not None and set(grant["scopes"]) == {"openid", "profile"}
    updated = [e["data"] for e in outbox_events(store, cid) if e["type"] == "grant.updated"]
    assert updated and set(updated[-1]["scopes"]) == {"openid", "profile"}
    fresh = make_token(
        store, settings, cid, kind="grant", subject=alice, grant_id=gid, scopes="openid profile"
    )
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_the_page_refuses_what_the_app_does_not_ask_for_and_not_now_changes_nothing(
    client, store, settings
) -> None:
    cid, _ = make_app(store, settings, scopes="openid profile")
    alice = make_user(store, username="alice")
    make_grant(store, settings, cid, alice, "openid", "user_id")
    session_sign_in(client, alice)
    for scope in ("org.members.read", "nope", ""):
        assert client.get(f"/privacy/apps/{cid}/scopes/add?scope={scope}").status_code == 404
    stranger, _ = make_app(store, settings)
    assert client.get(f"/privacy/apps/{stranger}/scopes/add?scope=profile").status_code == 404  # no grant
    page = client.get(f"/privacy/apps/{cid}/scopes/add?scope=profile").get_data(as_text=True)
    not_now = client.post(
        f"/privacy/apps/{cid}/scopes/add?scope=profile", data={"csrf_token": _csrf(page), "action": "deny"}
    )
    assert not_now.status_code == 303
    grant: dict[str, Any] | None = grants.get_grant(store, cid, alice)
    assert grant is not None and grant["scopes"] == ["openid"]


def test_the_apps_next_refresh_carries_the_added_scope(client, store, settings) -> None:
    """The whole loop through the token endpoint: a token for ``openid`` releases only the user id;
    the person adds ``profile`` on the grant_url page, and the app's next refresh answers with both
    scopes and /v1/me releases the profile."""
    from tests.support.client import basic
    from tests.support.oauth import code_form

    cid, secret = make_app(store, settings, name="Pocket Notes")
    alice = make_user(store, "alice", "pw")
    make_grant(store, settings, cid, alice, "openid", "user_id")
    session_sign_in(client, alice)
    first = client.post(
        "/oauth/token", data=code_form(client, cid, scope="openid"), headers=basic(cid, secret)
    ).get_json()
    assert first["scope"] == "openid"
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {first['access_token']}"}).get_json()
    assert set(me) == {"user_id"}

    page = client.get(f"/privacy/apps/{cid}/scopes/add?scope=profile").get_data(as_text=True)
    client.post(
        f"/privacy/apps/{cid}/scopes/add?scope=profile",
        data={"csrf_token": _csrf(page), "action": "approve", "field": ["nickname", "avatar"]},
    )
    refreshed = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=basic(cid, secret),
    ).get_json()
    assert refreshed["scope"].split() == ["openid", "profile"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"}).get_json()
    assert set(me) == {"user_id", "nickname", "avatar"}
