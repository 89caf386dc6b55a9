"""Explain (issue 14, item 2): for a person and an app, and for an admin and an installation, which
fields are released and why, which are not and why. The released ones come from the gate's own rule
(``released_fields`` in ``_fields.lua``), so they always equal what the app actually receives."""

from __future__ import annotations

from typing import Any

from broker.apps import registry as apps_svc
from broker.consent import grants, installations
from broker.core import catalog as catalog_mod
from broker.directory.service import set_role
from tests.support.apps import mini_payload, org_payload
from tests.support.factories import make_grant, make_org, make_token, make_user
from tests.support.signin import session_sign_in


def _by_field(client: Any, url: str) -> dict[str, dict[str, Any]]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {row["field"]: row for row in response.get_json()["fields"]}


def test_a_person_asks_why_an_app_gets_her_nickname(client, store, settings) -> None:
    catalog = catalog_mod.load(settings.scopes_dir)
    record, _, _ = apps_svc.register_app(
        store,
        settings,
        catalog,
        mini_payload(make_user(store), name="Pocket Notes", scopes=["openid", "profile", "contact"]),
    )
    cid = record["client_id"]
    alice = make_user(store, username="alice")
    gid = make_grant(store, settings, cid, alice, "openid profile", "user_id nickname")  # avatar unticked
    session_sign_in(client, alice)
    rows = _by_field(client, f"/privacy/v1/apps/{cid}/explain")
    assert rows["nickname"] == {"field": "nickname", "released": True, "reasons": ["requested", "granted"]}
    assert rows["avatar"]["reasons"] == ["unticked"] and not rows["avatar"]["released"]
    assert rows["email"]["reasons"] == ["never_shared"]
    assert rows["contact_permission"]["reasons"] == ["separate_consent_not_given"]

    # the same rule as the gate: what is released is exactly what /v1/me answers
    token = make_token(
        store, settings, cid, kind="grant", subject=alice, grant_id=gid, scopes="openid profile contact"
    )
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert {f for f, r in rows.items() if r["released"]} == set(me)

    page = client.get(f"/privacy/apps/{cid}/explain").get_data(as_text=True)
    assert "What Pocket Notes gets about you, and why" in page
    assert 'data-field="nickname" data-released="yes"' in page and 'data-reason="unticked"' in page
    assert f"/privacy/apps/{cid}/explain" in client.get("/privacy").get_data(as_text=True)

    grants.revoke_scope(store, settings, catalog, cid, alice, "profile")
    assert _by_field(client, f"/privacy/v1/apps/{cid}/explain")["nickname"]["reasons"] == [
        "scope_not_granted"
    ]
    apps_svc.suspend_app(store, cid)
    rows = _by_field(client, f"/privacy/v1/apps/{cid}/explain")
    assert not any(r["released"] for r in rows.values()) and rows["user_id"]["reasons"] == ["app_suspended"]
    assert client.get("/privacy/v1/apps/app_0000000000000000/explain").status_code == 404


def test_an_admin_asks_why_an_installation_gets_what_it_gets(app, client, store, settings) -> None:
    catalog = catalog_mod.load(settings.scopes_dir)
    admin = make_user(store, username="olivia", nickname="Olivia")
    oid = make_org(store, [admin], name="Acme")
    set_role(store, oid, admin, "admin")
    record, _, _ = apps_svc.register_app(
        store, settings, catalog, org_payload(make_user(store), name="Team Roster")
    )
    cid = record["client_id"]
    installations.install(store, cid, oid)
    session_sign_in(client, admin)
    rows = _by_field(client, f"/admin/v1/orgs/{oid}/installations/{cid}/explain")
    assert rows["nickname"]["reasons"] == ["requested", "installed"]
    assert rows["contact_permission"]["reasons"] == ["not_requested"]
    installations.disable(store, cid, oid)
    rows = _by_field(client, f"/admin/v1/orgs/{oid}/installations/{cid}/explain")
    assert rows["nickname"]["reasons"] == ["switched_off"] and not rows["nickname"]["released"]
    page = client.get(f"/admin/orgs/{oid}/apps/{cid}/explain").get_data(as_text=True)
    assert "What Team Roster gets about the members of Acme, and why" in page
    assert 'data-reason="switched_off"' in page
