"""An organization's app policy does something (issue 13, item 3): whether members may add
mini-programs themselves, an allow list for exceptions and a block list, set in the admin console and
the platform API, enforced at the authorization endpoint (a clear page) and on existing grants (they
end at once, and the app gets ``grant.revoked``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from broker.consent import grants
from broker.directory.service import set_role
from broker.storage import keys
from tests.support.apps import outbox_events
from tests.support.factories import make_app, make_grant, make_org, make_token, make_user
from tests.support.oauth import authorize, authorize_params, pkce_pair
from tests.support.signin import session_sign_in


def _world(app: Any, store: Any, settings: Any) -> dict[str, str]:
    app.config["WTF_CSRF_ENABLED"] = False
    owner = make_user(store, username="owner", nickname="Owner")
    alice = make_user(store, "alice", "pw", nickname="Alice")
    oid = make_org(store, [owner, alice], name="Acme")
    set_role(store, oid, owner, "owner")
    notes, _ = make_app(store, settings, name="Pocket Notes")
    other, _ = make_app(store, settings, name="Other Notes")
    return {"oid": oid, "owner": owner, "alice": alice, "notes": notes, "other": other}


def test_an_admin_turns_mini_programs_off_and_existing_grants_end_with_an_event(
    app, client, store, settings
) -> None:
    w = _world(app, store, settings)
    gid = make_grant(store, settings, w["notes"], w["alice"], "openid profile", "user_id nickname avatar")
    make_grant(store, settings, w["other"], w["alice"], "openid profile", "user_id nickname avatar")
    token = make_token(
        store, settings, w["notes"], kind="grant", subject=w["alice"], grant_id=gid, scopes="openid profile"
    )
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    session_sign_in(client, w["owner"])
    page = client.get(f"/admin/orgs/{w['oid']}/policy").get_data(as_text=True)
    assert "Members may add mini-programs themselves" in page and "Pocket Notes" in page
    saved = client.post(
        f"/admin/orgs/{w['oid']}/policy",
        data={f"app:{w['other']}": "allowed", f"app:{w['notes']}": "default"},  # box unticked: off
    )
    assert saved.status_code == 303
    after = client.get(f"/admin/orgs/{w['oid']}/policy").get_data(as_text=True)
    assert "Grants ended by the new policy: 1." in after

    assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert grants.get_grant(store, w["notes"], w["alice"]) is None
    assert grants.get_grant(store, w["other"], w["alice"]) is not None  # on the allow list
    assert [e["type"] for e in outbox_events(store, w["notes"])][-2:] == [
        "grant.revoked",
        "deletion.requested",
    ]
    policy = client.get(f"/admin/v1/orgs/{w['oid']}/policy").get_json()
    assert policy["allow_member_mini_programs"] is False and policy["allowed_apps"] == [w["other"]]
    trail = client.get(f"/admin/v1/orgs/{w['oid']}/audit").get_json()["audit"]
    assert trail[0]["what"] == "policy.changed" and trail[0]["details"]["grants_ended"] == 1


def test_a_refused_member_sees_a_clear_page_at_authorize_and_nothing_is_shared(
    app, client, store, settings
) -> None:
    w = _world(app, store, settings)
    h = {"Authorization": f"Bearer {settings.platform_api_key}"}
    changed = client.patch(f"/internal/v1/orgs/{w['oid']}", json={"blocked_apps": [w["notes"]]}, headers=h)
    assert changed.status_code == 200 and changed.get_json()["blocked_apps"] == [w["notes"]]

    session_sign_in(client, w["alice"])
    resp = authorize(client, authorize_params(w["notes"], pkce_pair()[1]))
    assert resp.status_code == 403
    html = resp.get_data(as_text=True)
    assert "Acme has blocked Pocket Notes for its members." in html
    back = html.split('class="button" href="')[1].split('"')[0].replace("&amp;", "&")
    q = parse_qs(urlsplit(back).query)
    assert q["error"] == ["access_denied"] and q["state"] == ["st-123"] and "iss" in q
    assert grants.get_grant(store, w["notes"], w["alice"]) is None
    assert not store.redis.keys(f"{keys.app_tag(w['notes'])}:code:*")  # no code was issued

    # the other app is fine (mini-programs are on by default); switching them off refuses it too
    ok = authorize(client, authorize_params(w["other"], pkce_pair()[1]))
    assert ok.status_code == 302 and urlsplit(ok.headers["Location"]).path.startswith("/consent/")
    client.patch(f"/internal/v1/orgs/{w['oid']}", json={"allow_member_mini_programs": False}, headers=h)
    off = authorize(client, authorize_params(w["other"], pkce_pair()[1]))
    assert off.status_code == 403 and "does not let its members add mini-programs" in off.get_data(
        as_text=True
    )


def test_bad_policy_input_is_refused_and_changes_nothing(app, client, store, settings) -> None:
    w = _world(app, store, settings)
    h = {"Authorization": f"Bearer {settings.platform_api_key}"}
    unknown = client.patch(
        f"/internal/v1/orgs/{w['oid']}", json={"blocked_apps": ["app_0000000000000000"]}, headers=h
    )
    assert unknown.status_code == 400 and "apps" in unknown.get_json()["errors"]
    malformed = client.patch(f"/internal/v1/orgs/{w['oid']}", json={"allowed_apps": ["nope"]}, headers=h)
    assert malformed.status_code == 400 and "allowed_apps" in malformed.get_json()["errors"]
    both = client.patch(
        f"/internal/v1/orgs/{w['oid']}",
        json={"allowed_apps": [w["notes"]], "blocked_apps": [w["notes"]], "name": "Renamed"},
        headers=h,
    )
    assert both.status_code == 400
    org = client.get(f"/internal/v1/orgs/{w['oid']}", headers=h).get_json()
    assert org["name"] == "Acme" and org["allowed_apps"] == [] and org["blocked_apps"] == []
    session_sign_in(client, w["alice"])
    assert client.get(f"/admin/orgs/{w['oid']}/policy").status_code == 403  # a plain member


def test_a_person_joining_an_org_that_blocks_an_app_loses_that_grant(app, client, store, settings) -> None:
    w = _world(app, store, settings)
    bob = make_user(store, username="bob", nickname="Bob")
    make_grant(store, settings, w["notes"], bob, "openid profile", "user_id nickname avatar")
    h = {"Authorization": f"Bearer {settings.platform_api_key}"}
    client.patch(f"/internal/v1/orgs/{w['oid']}", json={"blocked_apps": [w["notes"]]}, headers=h)
    assert grants.get_grant(store, w["notes"], bob) is not None  # not a member yet
    assert (
        client.put(
            f"/internal/v1/orgs/{w['oid']}/members/{bob}", json={"role": "member"}, headers=h
        ).status_code
        == 201
    )
    assert grants.get_grant(store, w["notes"], bob) is None
