"""A separate choice for contact (issue 14, item 7): a mini-program that wants to contact the person
about its products asks for the ``contact`` scope, shown as its own unticked checkbox; granted, the
app sees ``contact_permission: "granted"``; withdrawn like any other scope, it is gone at once."""

from __future__ import annotations

import re
from typing import Any

from broker.apps import registry as apps
from broker.core import catalog as catalog_mod
from broker.storage import keys
from tests.support.apps import mini_payload, outbox_events
from tests.support.factories import make_token, make_user

RETURN_TO = "/oauth/authorize?client_id=x&state=s"


def _consent(client: Any, cid: str, uid: str, fields: list[str]) -> None:
    with client.session_transaction() as s:
        s["uid"], s["auth_time"] = uid, 1
        s["interactions"] = {
            "i1": {
                "client_id": cid,
                "scopes": ["openid", "profile", "contact"],
                "return_to": RETURN_TO,
                "result": None,
            }
        }
    page = client.get("/consent/i1").get_data(as_text=True)
    separate = page.split('class="separate"')[1].split("</fieldset>")[0]
    assert 'value="contact_permission"' in separate and "checked" not in separate  # unticked
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    done = client.post(
        "/consent/i1", data={"csrf_token": token.group(1), "action": "approve", "field": fields}
    )
    assert done.status_code == 303


def test_contact_is_its_own_unticked_choice_granted_and_withdrawn_like_any_other(
    client, store, settings
) -> None:
    catalog = catalog_mod.load(settings.scopes_dir)
    record, _, _ = apps.register_app(
        store, settings, catalog, mini_payload(make_user(store), scopes=["openid", "profile", "contact"])
    )
    cid = record["client_id"]
    alice = make_user(store, username="alice")

    _consent(client, cid, alice, ["nickname", "avatar"])  # not ticked
    grant = store.redis.hgetall(keys.grant(cid, alice))
    assert "contact" not in grant["scopes"].split() and "contact_permission" not in grant["fields"].split()
    token = make_token(
        store,
        settings,
        cid,
        kind="grant",
        subject=alice,
        grant_id=grant["id"],
        scopes="openid profile contact",
    )
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert "contact_permission" not in me

    _consent(client, cid, alice, ["nickname", "avatar", "contact_permission"])  # ticked
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert me["contact_permission"] == "granted"

    csrf = client.get("/privacy/v1/csrf-token").get_json()["csrf_token"]
    withdrawn = client.post(f"/privacy/v1/apps/{cid}/scopes/contact/revoke", headers={"X-CSRFToken": csrf})
    assert withdrawn.status_code == 200
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert "contact_permission" not in me and me["nickname"]
    updated = [e["data"] for e in outbox_events(store, cid) if e["type"] == "grant.updated"]
    assert "contact" not in updated[-1]["scopes"]
