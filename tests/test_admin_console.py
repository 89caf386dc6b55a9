"""Admin console: roles (403/404), App Center, install with chosen scopes, impact previews,
disable/enable/remove effective on the next data request, member requests, sub-admins, audit, disband."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.core import catalog as catalog_mod
from broker.directory.service import set_role
from broker.storage import keys
from tests.support.apps import org_payload, outbox_events
from tests.support.factories import make_org, make_token, make_user
from tests.support.ledger import journal_records
from tests.support.signin import session_sign_in


@dataclass
class World:
    oid: str
    owner: str
    admin: str
    apps_sub: str
    members_sub: str
    member: str
    outsider: str
    client_id: str
    other_app: str


@pytest.fixture
def world(app, client, store, settings) -> World:
    app.config["WTF_CSRF_ENABLED"] = False
    people = {
        n: make_user(store, username=n, nickname=n.capitalize())
        for n in ("owner", "admin", "appsub", "memsub", "member", "outsider")
    }
    oid = make_org(store, [people[n] for n in ("owner", "admin", "appsub", "memsub", "member")], name="Acme")
    set_role(store, oid, people["owner"], "owner")
    set_role(store, oid, people["admin"], "admin")
    set_role(store, oid, people["appsub"], "sub_admin", ["apps.manage"])
    set_role(store, oid, people["memsub"], "sub_admin", ["members.manage"])
    catalog = catalog_mod.load(settings.scopes_dir)
    dev = make_user(store, username="dev")
    record, _, _ = apps_svc.register_app(store, settings, catalog, org_payload(dev))
    other, _, _ = apps_svc.register_app(store, settings, catalog, org_payload(dev, name="Payroll"))
    return World(
        oid,
        people["owner"],
        people["admin"],
        people["appsub"],
        people["memsub"],
        people["member"],
        people["outsider"],
        record["client_id"],
        other["client_id"],
    )


def install(
    client: Any, w: World, client_id: str | None = None, scopes: tuple[str, ...] = ("org.members.read",)
):
    return client.post(
        f"/admin/orgs/{w.oid}/apps/{client_id or w.client_id}/install", data={"scopes": list(scopes)}
    )


def org_token(store: Any, settings: Any, w: World) -> str:
    inst = inst_svc.require_installation(store, w.client_id, w.oid)
    return make_token(
        store,
        settings,
        w.client_id,
        kind="installation",
        subject=w.oid,
        grant_id=inst["id"],
        scopes="org.members.read",
    )


def members_status(client: Any, w: World, token: str) -> int:
    return int(
        client.get(f"/v1/orgs/{w.oid}/members", headers={"Authorization": f"Bearer {token}"}).status_code
    )


def audit_whats(client: Any, w: World) -> list[str]:
    return [a["what"] for a in client.get(f"/admin/v1/orgs/{w.oid}/audit").get_json()["audit"]]


def test_signed_out(client, world) -> None:
    page = client.get(f"/admin/orgs/{world.oid}/")
    assert page.status_code == 303 and page.headers["Location"].startswith("/login?next=")
    api = client.get(f"/admin/v1/orgs/{world.oid}/installations")
    assert api.status_code == 401 and api.get_json()["error"] == "unauthorized"
    assert client.get("/console").status_code == 303


def test_non_members_get_404_and_members_without_permission_403(client, store, world) -> None:
    w = world
    session_sign_in(client, w.outsider)
    for path in (
        f"/admin/orgs/{w.oid}/",
        f"/admin/orgs/{w.oid}/app-center",
        f"/admin/v1/orgs/{w.oid}/app-center",
    ):
        assert client.get(path).status_code == 404, path
    assert install(client, w).status_code == 404
    missing = client.get("/admin/v1/orgs/org_0000000000000000/app-center")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"

    session_sign_in(client, w.member)
    assert client.get(f"/admin/orgs/{w.oid}/app-center").status_code == 200
    for path in (
        f"/admin/orgs/{w.oid}/",
        f"/admin/orgs/{w.oid}/audit",
        f"/admin/orgs/{w.oid}/requests",
        f"/admin/orgs/{w.oid}/admins",
        f"/admin/orgs/{w.oid}/apps/{w.client_id}",
    ):
        assert client.get(path).status_code == 403, path
    forbidden = client.post(f"/admin/v1/orgs/{w.oid}/installations", json={"client_id": w.client_id})
    assert forbidden.status_code == 403 and forbidden.get_json()["error"] == "forbidden"
    assert install(client, w).status_code == 403

    session_sign_in(client, w.members_sub)
    assert install(client, w).status_code == 403
    assert client.get(f"/admin/orgs/{w.oid}/").status_code == 200
    session_sign_in(client, w.admin)
    assert client.get(f"/admin/orgs/{w.oid}/disband").status_code == 403
    assert client.post(f"/admin/orgs/{w.oid}/disband", data={"confirm": "Acme"}).status_code == 403
    assert store.redis.exists(keys.org(w.oid))
    assert not store.redis.exists(keys.installation(w.client_id, w.oid))


def test_app_center_and_install_show_the_member_fields(client, store, world) -> None:
    w = world
    session_sign_in(client, w.apps_sub)
    listing = client.get(f"/admin/v1/orgs/{w.oid}/app-center").get_json()["apps"]
    assert {a["client_id"] for a in listing} == {w.client_id, w.other_app}
    assert all(a["installed"] is False for a in listing)
    form = client.get(f"/admin/orgs/{w.oid}/apps/{w.client_id}/install")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert re.findall(r'class="shared-field" data-field="(\w+)"', html) == ["user_id", "nickname", "avatar"]
    assert (
        "Each member&#39;s profile picture" in html and "Your profile picture" not in html
    )  # the admin's text
    done = install(client, w)
    assert done.status_code == 303 and done.headers["Location"] == f"/admin/orgs/{w.oid}/apps/{w.client_id}"
    inst = inst_svc.require_installation(store, w.client_id, w.oid)
    assert inst["scopes"] == ["org.members.read"] and inst["enabled"] and inst["installed_by"] == w.apps_sub
    assert store.redis.sismember(keys.org_installations(w.oid), w.client_id)
    assert [e["type"] for e in outbox_events(store, w.client_id)] == ["installation.installed"]
    assert audit_whats(client, w) == ["installation.installed"]
    page = client.get(f"/admin/orgs/{w.oid}/apps/{w.client_id}").get_data(as_text=True)
    assert '<span id="state">on</span>' in page
    again = install(client, w)
    assert again.status_code == 303
    assert len(outbox_events(store, w.client_id)) == 1


def test_bad_install_names_the_field_and_writes_nothing(client, store, world) -> None:
    w = world
    session_sign_in(client, w.admin)
    none = install(client, w, scopes=())
    assert none.status_code == 400 and 'data-field="scopes"' in none.get_data(as_text=True)
    foreign = install(client, w, scopes=("profile",))
    assert foreign.status_code == 400 and "not requested by the app" in foreign.get_data(as_text=True)
    api = client.post(f"/admin/v1/orgs/{w.oid}/installations", json={"client_id": "nope", "scopes": []})
    assert api.status_code == 400 and set(api.get_json()["errors"]) == {"client_id", "scopes"}
    assert not store.redis.exists(keys.installation(w.client_id, w.oid))
    assert outbox_events(store, w.client_id) == []
    assert audit_whats(client, w) == []


def test_disable_enable_remove_take_effect_on_the_next_request(client, store, settings, world) -> None:
    w = world
    session_sign_in(client, w.admin)
    assert install(client, w).status_code == 303
    token = org_token(store, settings, w)
    assert members_status(client, w, token) == 200
    seen = len(journal_records(store, w.client_id))
    assert seen == 5

    preview = client.get(f"/admin/orgs/{w.oid}/apps/{w.client_id}/disable")
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert '<strong id="impact-members">5</strong>' in html
    assert re.findall(r'class="impact-field" data-field="(\w+)"', html) == ["user_id", "nickname", "avatar"]
    assert inst_svc.require_installation(store, w.client_id, w.oid)["enabled"]  # a preview changes nothing

    assert client.post(f"/admin/orgs/{w.oid}/apps/{w.client_id}/disable").status_code == 303
    assert members_status(client, w, token) == 401
    assert len(journal_records(store, w.client_id)) == seen

    impact = client.get(f"/admin/v1/orgs/{w.oid}/installations/{w.client_id}/impact?action=enable").get_json()
    assert (
        impact["change"] == "start"
        and impact["members"] == 5
        and impact["fields"] == ["user_id", "nickname", "avatar"]
    )
    assert client.post(f"/admin/orgs/{w.oid}/apps/{w.client_id}/enable").status_code == 303
    assert members_status(client, w, token) == 200
    seen = len(journal_records(store, w.client_id))

    assert client.get(f"/admin/orgs/{w.oid}/apps/{w.client_id}/remove").status_code == 200
    assert client.post(f"/admin/orgs/{w.oid}/apps/{w.client_id}/remove").status_code == 303
    assert members_status(client, w, token) == 401
    assert len(journal_records(store, w.client_id)) == seen
    assert not store.redis.exists(keys.installation(w.client_id, w.oid))
    assert not store.redis.sismember(keys.org_installations(w.oid), w.client_id)
    types = [e["type"] for e in outbox_events(store, w.client_id)]
    assert types == [
        "installation.installed",
        "installation.disabled",
        "installation.enabled",
        "installation.removed",
    ]
    assert audit_whats(client, w) == [
        "installation.removed",
        "installation.enabled",
        "installation.disabled",
        "installation.installed",
    ]
    gone = client.get(f"/admin/orgs/{w.oid}/apps/{w.client_id}/disable")
    assert gone.status_code == 404


def test_json_api_switches_the_installation(client, store, settings, world) -> None:
    w = world
    session_sign_in(client, w.apps_sub)
    created = client.post(f"/admin/v1/orgs/{w.oid}/installations", json={"client_id": w.client_id})
    assert created.status_code == 201
    assert created.headers["Location"] == f"/admin/v1/orgs/{w.oid}/installations/{w.client_id}"
    token = org_token(store, settings, w)
    off = client.patch(f"/admin/v1/orgs/{w.oid}/installations/{w.client_id}", json={"enabled": False})
    assert off.status_code == 200 and off.get_json()["enabled"] is False
    assert members_status(client, w, token) == 401
    again = client.patch(f"/admin/v1/orgs/{w.oid}/installations/{w.client_id}", json={"enabled": False})
    assert again.status_code == 200 and again.get_json()["enabled"] is False
    assert audit_whats(client, w) == ["installation.disabled", "installation.installed"]
    assert [e["type"] for e in outbox_events(store, w.client_id)][-1] == "installation.disabled"
    bad = client.patch(f"/admin/v1/orgs/{w.oid}/installations/{w.client_id}", json={"enabled": "no"})
    assert bad.status_code == 400 and set(bad.get_json()["errors"]) == {"enabled"}
    assert client.delete(f"/admin/v1/orgs/{w.oid}/installations/{w.client_id}").status_code == 204
    assert client.delete(f"/admin/v1/orgs/{w.oid}/installations/{w.client_id}").status_code == 404
    assert client.get(f"/admin/v1/orgs/{w.oid}/installations").get_json() == {"installations": []}


def test_member_requests_an_app_and_sees_the_outcome(client, store, world) -> None:
    w = world
    session_sign_in(client, w.member)
    sent = client.post(f"/admin/orgs/{w.oid}/requests", data={"client_id": w.client_id, "reason": "rosters"})
    assert sent.status_code == 303 and sent.headers["Location"].startswith(
        f"/admin/orgs/{w.oid}/requests/mine#rq_"
    )
    twice = client.post(f"/admin/orgs/{w.oid}/requests", data={"client_id": w.client_id, "reason": "again"})
    assert twice.status_code == 303 and twice.headers["Location"] == f"/admin/orgs/{w.oid}/app-center"
    other = client.post(f"/admin/v1/orgs/{w.oid}/requests", json={"client_id": w.other_app, "reason": "pay"})
    assert other.status_code == 201
    mine = client.get(f"/admin/v1/orgs/{w.oid}/requests/mine").get_json()["requests"]
    assert {r["client_id"]: r["status"] for r in mine} == {w.client_id: "pending", w.other_app: "pending"}
    first = next(r["id"] for r in mine if r["client_id"] == w.client_id)
    second = other.get_json()["id"]
    assert client.post(f"/admin/orgs/{w.oid}/requests/{first}/approve").status_code == 403

    session_sign_in(client, w.apps_sub)
    listing = client.get(f"/admin/orgs/{w.oid}/requests").get_data(as_text=True)
    assert "rosters" in listing and "Member" in listing
    no_reason = client.post(f"/admin/v1/orgs/{w.oid}/requests/{second}/decision", json={"decision": "deny"})
    assert no_reason.status_code == 400 and set(no_reason.get_json()["errors"]) == {"reason"}
    denied = client.post(
        f"/admin/orgs/{w.oid}/requests/{second}/deny", data={"reason": "we use another tool"}
    )
    assert denied.status_code == 303
    approved = client.post(
        f"/admin/orgs/{w.oid}/requests/{first}/approve", data={"scopes": "org.members.read"}
    )
    assert approved.status_code == 303
    inst = inst_svc.require_installation(store, w.client_id, w.oid)
    assert inst["installed_by"] == w.apps_sub and inst["enabled"]
    assert not store.redis.exists(keys.installation(w.other_app, w.oid))
    late = client.post(
        f"/admin/v1/orgs/{w.oid}/requests/{first}/decision", json={"decision": "deny", "reason": "x"}
    )
    assert late.status_code == 409
    assert audit_whats(client, w) == ["request.approved", "request.denied"]
    assert [e["type"] for e in outbox_events(store, w.client_id)] == ["installation.installed"]

    session_sign_in(client, w.member)
    page = client.get(f"/admin/orgs/{w.oid}/requests/mine").get_data(as_text=True)
    assert page.count('class="status">approved<') == 1 and page.count('class="status">denied<') == 1
    assert "Reason: we use another tool" in page and "Appsub" in page


def test_admins_appoint_and_remove_sub_admins(client, store, world) -> None:
    w = world
    session_sign_in(client, w.apps_sub)
    assert client.get(f"/admin/orgs/{w.oid}/admins").status_code == 403
    assert (
        client.put(
            f"/admin/v1/orgs/{w.oid}/roles/{w.member}", json={"permissions": ["apps.manage"]}
        ).status_code
        == 403
    )

    session_sign_in(client, w.admin)
    page = client.get(f"/admin/orgs/{w.oid}/admins")
    assert page.status_code == 200 and w.member in page.get_data(as_text=True)
    done = client.post(
        f"/admin/orgs/{w.oid}/admins", data={"user_id": w.member, "permissions": "apps.manage"}
    )
    assert done.status_code == 303
    assert json.loads(store.redis.hget(keys.org_roles(w.oid), w.member)) == {
        "role": "sub_admin",
        "permissions": ["apps.manage"],
    }
    bad = client.put(f"/admin/v1/orgs/{w.oid}/roles/{w.member}", json={"permissions": ["root"]})
    assert bad.status_code == 400 and set(bad.get_json()["errors"]) == {"permissions"}
    owner = client.put(f"/admin/v1/orgs/{w.oid}/roles/{w.owner}", json={"permissions": ["apps.manage"]})
    assert owner.status_code == 409
    stranger = client.put(f"/admin/v1/orgs/{w.oid}/roles/{w.outsider}", json={"permissions": ["apps.manage"]})
    assert stranger.status_code == 400 and set(stranger.get_json()["errors"]) == {"user_id"}

    session_sign_in(client, w.member)
    assert install(client, w).status_code == 303  # the new permission works at once

    session_sign_in(client, w.admin)
    assert client.post(f"/admin/orgs/{w.oid}/admins/{w.member}/remove").status_code == 303
    assert json.loads(store.redis.hget(keys.org_roles(w.oid), w.member))["role"] == "member"
    assert client.delete(f"/admin/v1/orgs/{w.oid}/roles/{w.member}").status_code == 404
    session_sign_in(client, w.member)
    assert client.get(f"/admin/orgs/{w.oid}/apps/{w.client_id}").status_code == 403
    session_sign_in(client, w.owner)
    whats = audit_whats(client, w)
    assert whats == ["sub_admin.removed", "installation.installed", "sub_admin.appointed"]
    audit_page = client.get(f"/admin/orgs/{w.oid}/audit").get_data(as_text=True)
    assert audit_page.count('class="audit"') == 3 and "Admin" in audit_page


def test_owner_disbands_the_org(client, store, settings, world) -> None:
    w = world
    session_sign_in(client, w.owner)
    assert install(client, w).status_code == 303
    token = org_token(store, settings, w)
    assert members_status(client, w, token) == 200
    seen = len(journal_records(store, w.client_id))
    assert client.get(f"/admin/orgs/{w.oid}/disband").status_code == 200
    wrong = client.post(f"/admin/orgs/{w.oid}/disband", data={"confirm": "acme"})
    assert wrong.status_code == 400 and 'id="confirm-error"' in wrong.get_data(as_text=True)
    assert store.redis.exists(keys.org(w.oid))
    done = client.post(f"/admin/orgs/{w.oid}/disband", data={"confirm": "Acme"})
    assert done.status_code == 303 and done.headers["Location"] == "/console"
    assert members_status(client, w, token) == 401
    assert len(journal_records(store, w.client_id)) == seen
    assert [e["type"] for e in outbox_events(store, w.client_id)][-1] == "installation.removed"
    assert list(store.redis.scan_iter(match=f"{keys.org_tag(w.oid)}:*")) == []
    for uid in (w.owner, w.admin, w.member):
        assert not store.redis.sismember(keys.user_orgs(uid), w.oid)
    assert not store.redis.sismember(keys.app_installations(w.client_id), w.oid)
    assert client.get(f"/admin/orgs/{w.oid}/").status_code == 404


def test_json_disband_names_the_confirm_field(client, store, world) -> None:
    session_sign_in(client, world.owner)
    bad = client.post(f"/admin/v1/orgs/{world.oid}/disband", json={"confirm": "nope"})
    assert bad.status_code == 400 and set(bad.get_json()["errors"]) == {"confirm"}
    ok = client.post(f"/admin/v1/orgs/{world.oid}/disband", json={"confirm": "Acme"})
    assert ok.status_code == 200 and ok.get_json()["disbanded"] is True
    assert not store.redis.exists(keys.org(world.oid))


def test_console_home_lists_administered_orgs(client, store, world) -> None:
    session_sign_in(client, world.admin)
    html = client.get("/console").get_data(as_text=True)
    assert f'href="/admin/orgs/{world.oid}/">Acme</a>' in html and 'href="/developer/"' in html
    session_sign_in(client, world.member)
    html = client.get("/console").get_data(as_text=True)
    assert f'href="/admin/orgs/{world.oid}/">' not in html and "Acme" in html


def test_post_without_csrf_token_is_refused(app, client, store, world) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    session_sign_in(client, world.admin)
    page = install(client, world)
    assert page.status_code == 400 and "csrf_failed" in page.get_data(as_text=True)
    api = client.post(f"/admin/v1/orgs/{world.oid}/installations", json={"client_id": world.client_id})
    assert api.status_code == 400 and api.get_json()["error"] == "csrf_failed"
    assert not store.redis.exists(keys.installation(world.client_id, world.oid))
    token = client.get("/admin/v1/csrf-token").get_json()["csrf_token"]
    ok = client.post(
        f"/admin/v1/orgs/{world.oid}/installations",
        json={"client_id": world.client_id},
        headers={"X-CSRFToken": token},
    )
    assert ok.status_code == 201


def test_a_suspended_app_cannot_be_added_or_requested(client, store, world) -> None:
    apps_svc.suspend_app(store, world.client_id)
    session_sign_in(client, world.admin)
    listing = client.get(f"/admin/v1/orgs/{world.oid}/app-center").get_json()["apps"]
    assert [a["client_id"] for a in listing] == [world.other_app]
    refused = client.post(f"/admin/v1/orgs/{world.oid}/installations", json={"client_id": world.client_id})
    assert refused.status_code == 409 and refused.get_json()["error"] == "conflict"
    session_sign_in(client, world.member)
    asked = client.post(f"/admin/v1/orgs/{world.oid}/requests", json={"client_id": world.client_id})
    assert asked.status_code == 409
    assert not store.redis.exists(keys.installation(world.client_id, world.oid))
    assert not store.redis.exists(keys.org_app_requests(world.oid))


def test_org_disclosures_section_shows_what_the_orgs_apps_received(
    app, client, store, settings, world
) -> None:
    from broker.consent import installations as inst_svc
    from broker.ledger.sequencer import Sequencer
    from tests.support.factories import make_token

    session_sign_in(client, world.admin)
    assert "No disclosures yet." in client.get(f"/admin/orgs/{world.oid}/").get_data(as_text=True)
    inst = inst_svc.install(store, world.client_id, world.oid, ["org.members.read"])
    token = make_token(
        store,
        settings,
        world.client_id,
        kind="installation",
        subject=world.oid,
        grant_id=inst["id"],
        scopes="org.members.read",
    )
    listed = client.get(f"/v1/orgs/{world.oid}/members", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    Sequencer(store, app.extensions["broker.keyring"], settings).run_once()
    page = client.get(f"/admin/orgs/{world.oid}/").get_data(as_text=True)
    assert "GET /v1/orgs/{org_id}/members" in page
    url = f"/admin/v1/orgs/{world.oid}/disclosures"
    body = client.get(url).get_json()
    records = [entry["record"] for entry in body["records"]]
    everyone = {world.owner, world.admin, world.apps_sub, world.members_sub, world.member}
    assert {r["person"] for r in records} == everyone
    assert {tuple(r["fields"]) for r in records} == {("avatar", "nickname", "user_id")}
    assert all(entry["inclusion_proof"] is not None for entry in body["records"])
    assert body["checkpoint"] is None  # an org's records are in its members' logs: one checkpoint each
    assert all(body["checkpoints"][e["log"]]["tree_size"] == e["tree_size"] for e in body["records"])
    assert sum(body["checkpoints"][log]["tree_size"] for log in {e["log"] for e in body["records"]}) == 5
    # filters, pagination and export
    one = client.get(f"{url}?person={world.member}").get_json()["records"]
    assert [entry["record"]["person"] for entry in one] == [world.member]
    first = client.get(f"{url}?limit=2").get_json()
    rest = client.get(f"{url}?limit=10&cursor={first['next_cursor']}").get_json()
    assert len(first["records"]) == 2 and len(rest["records"]) == 3 and rest["next_cursor"] is None
    csv = client.get(f"{url}?format=csv")
    assert csv.mimetype == "text/csv" and len(csv.get_data(as_text=True).strip().splitlines()) == 6
    bad = client.get(f"{url}?since=yesterday")
    assert bad.status_code == 400 and "since" in bad.get_json()["errors"]
    session_sign_in(client, world.member)
    assert client.get(url).status_code == 403
    session_sign_in(client, world.outsider)
    assert client.get(url).status_code == 404


def test_each_permission_does_exactly_what_it_says(client, store, settings, world) -> None:
    """One permission model: members.manage adds and removes plain members (and the org's apps are
    told), disclosures.read opens the disclosures, apps.manage neither."""
    from broker.core.pairwise import pairwise_id

    w = world
    session_sign_in(client, w.admin)
    assert install(client, w).status_code == 303
    appointed = client.post(
        f"/admin/orgs/{w.oid}/admins", data={"user_id": w.member, "permissions": "disclosures.read"}
    )
    assert appointed.status_code == 303
    assert json.loads(store.redis.hget(keys.org_roles(w.oid), w.member))["permissions"] == [
        "disclosures.read"
    ]
    admins_page = client.get(f"/admin/orgs/{w.oid}/admins").get_data(as_text=True)
    assert "apps received about members" in admins_page and "disclosures.read" in admins_page

    # disclosures.read: the disclosures and nothing else
    session_sign_in(client, w.member)
    assert client.get(f"/admin/v1/orgs/{w.oid}/disclosures").status_code == 200
    assert 'id="disclosures-h"' in client.get(f"/admin/orgs/{w.oid}/").get_data(as_text=True)
    assert client.get(f"/admin/orgs/{w.oid}/members").status_code == 403
    assert install(client, w, w.other_app).status_code == 403

    # apps.manage: no members, no disclosures
    session_sign_in(client, w.apps_sub)
    assert client.get(f"/admin/v1/orgs/{w.oid}/disclosures").status_code == 403
    assert 'id="disclosures-h"' not in client.get(f"/admin/orgs/{w.oid}/").get_data(as_text=True)
    assert client.get(f"/admin/v1/orgs/{w.oid}/members").status_code == 403

    # members.manage: add by username, remove plain members; the installed app is told
    session_sign_in(client, w.members_sub)
    assert client.get(f"/admin/v1/orgs/{w.oid}/disclosures").status_code == 403
    page = client.get(f"/admin/orgs/{w.oid}/members")
    assert page.status_code == 200 and "Outsider" not in page.get_data(as_text=True)
    added = client.post(f"/admin/orgs/{w.oid}/members", data={"username": "outsider"})
    assert added.status_code == 303
    page = client.get(f"/admin/orgs/{w.oid}/members").get_data(as_text=True)
    assert "Outsider was added to the organization." in page and w.outsider not in page.split("<table")[
        1
    ].split("</table>")[0].replace(f"/members/{w.outsider}/remove", "")  # shown by name, not by id
    assert store.redis.zscore(keys.org_members(w.oid), w.outsider) is not None
    again = client.post(f"/admin/v1/orgs/{w.oid}/members", json={"username": "outsider"})
    assert again.status_code == 409
    nobody = client.post(f"/admin/v1/orgs/{w.oid}/members", json={"username": "nobody"})
    assert nobody.status_code == 400 and set(nobody.get_json()["errors"]) == {"username"}
    extra = client.post(f"/admin/v1/orgs/{w.oid}/members", json={"username": "x", "role": "owner"})
    assert extra.status_code == 400
    assert client.delete(f"/admin/v1/orgs/{w.oid}/members/{w.admin}").status_code == 409
    assert (
        client.delete(f"/admin/v1/orgs/{w.oid}/members/{w.apps_sub}").status_code == 409
    )  # sub-admins: admins only
    assert client.post(f"/admin/orgs/{w.oid}/members/{w.outsider}/remove").status_code == 303
    assert store.redis.zscore(keys.org_members(w.oid), w.outsider) is None
    assert client.delete(f"/admin/v1/orgs/{w.oid}/members/{w.outsider}").status_code == 404
    listed = client.get(f"/admin/v1/orgs/{w.oid}/members").get_json()["members"]
    assert {m["username"] for m in listed} == {"owner", "admin", "appsub", "memsub", "member"}

    events = [e for e in outbox_events(store, w.client_id) if e["type"].startswith("member.")]
    seen_as = pairwise_id(settings.pairwise_key, w.client_id, w.outsider, w.oid)
    assert [(e["type"], e["data"]) for e in events] == [
        ("member.added", {"org_id": w.oid, "user_id": seen_as}),
        ("member.removed", {"org_id": w.oid, "user_id": seen_as}),
    ]
    assert not [e for e in outbox_events(store, w.other_app) if e["type"].startswith("member.")]

    session_sign_in(client, w.owner)
    assert audit_whats(client, w)[:2] == ["member.removed", "member.added"]


def test_the_platform_api_refuses_unknown_permissions_and_its_changes_are_audited(
    client, store, settings, world
) -> None:
    w = world
    h = {"Authorization": f"Bearer {settings.platform_api_key}"}
    url = f"/internal/v1/orgs/{w.oid}/members/{w.outsider}"
    bad = client.put(url, json={"role": "sub_admin", "permissions": ["root"]}, headers=h)
    assert bad.status_code == 400 and "permissions" in bad.get_json()["errors"]
    assert store.redis.zscore(keys.org_members(w.oid), w.outsider) is None  # nothing changed
    ok = client.put(url, json={"role": "sub_admin", "permissions": ["disclosures.read"]}, headers=h)
    assert ok.status_code == 201 and ok.get_json()["permissions"] == ["disclosures.read"]
    session_sign_in(client, w.outsider)
    assert client.get(f"/admin/v1/orgs/{w.oid}/disclosures").status_code == 200  # effective, not dropped
    assert client.delete(url, headers=h).status_code == 204
    session_sign_in(client, w.owner)
    trail = client.get(f"/admin/v1/orgs/{w.oid}/audit").get_json()["audit"]
    assert [(a["who"], a["what"]) for a in trail[:2]] == [
        ("platform", "member.removed"),
        ("platform", "member.added"),
    ]


def test_a_suspended_app_shows_as_suspended_to_admins_and_members(client, store, settings, world) -> None:
    w = world
    session_sign_in(client, w.admin)
    assert install(client, w).status_code == 303
    overview = client.get(f"/admin/orgs/{w.oid}/").get_data(as_text=True)
    assert "suspended by the platform operator" not in overview
    h = {"Authorization": f"Bearer {settings.platform_api_key}"}
    assert client.post(f"/internal/v1/apps/{w.client_id}/suspend", headers=h).status_code == 200
    overview = client.get(f"/admin/orgs/{w.oid}/").get_data(as_text=True)
    assert "suspended by the platform operator: receives nothing" in overview
    session_sign_in(client, w.member)
    privacy = client.get("/privacy").get_data(as_text=True)
    assert "suspended by the platform operator: it receives nothing" in privacy
    listed = client.get("/privacy/v1/apps").get_json()["org_apps"]
    assert [(a["client_id"], a["status"]) for a in listed] == [(w.client_id, "suspended")]
    assert client.post(f"/internal/v1/apps/{w.client_id}/restore", headers=h).status_code == 200
    assert "suspended by the platform operator" not in client.get("/privacy").get_data(as_text=True)


def test_an_org_app_a_developer_registers_waits_for_the_operators_review(
    client, store, settings, world
) -> None:
    """A developer's org app is listed in App Centers only after the operator approves it; the
    listing and the install page show developer, contact, privacy policy and terms of service."""
    from tests.support.developer import FORM

    w = world
    session_sign_in(client, w.outsider)
    form = {
        **FORM,
        "kind": "org_app",
        "client_type": "confidential",
        "name": "Shift Planner",
        "scopes": "org.members.read",
        "redirect_uris": "https://shifts.example.com/cb",
        "terms_of_service_url": "https://shifts.example.com/terms",
    }
    created = client.post("/developer/apps", data=form)
    assert created.status_code == 303
    client_id = created.headers["Location"].rsplit("/", 1)[1]
    page = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    assert "review: not listed in any App Center yet" in page
    assert client.get(f"/developer/v1/apps/{client_id}").get_json()["review"] == "pending"

    session_sign_in(client, w.admin)
    center = client.get(f"/admin/orgs/{w.oid}/app-center").get_data(as_text=True)
    assert "Shift Planner" not in center
    assert (
        "not yet approved"
        in client.post(f"/admin/v1/orgs/{w.oid}/installations", json={"client_id": client_id}).get_json()[
            "detail"
        ]
    )
    assert 'id="not-reviewed"' in client.get(f"/admin/orgs/{w.oid}/apps/{client_id}").get_data(as_text=True)
    session_sign_in(client, w.member)
    asked = client.post(f"/admin/v1/orgs/{w.oid}/requests", json={"client_id": client_id})
    assert asked.status_code == 409

    h = {"Authorization": f"Bearer {settings.platform_api_key}"}
    pending = client.get("/internal/v1/apps?review=pending", headers=h).get_json()["apps"]
    assert [a["client_id"] for a in pending] == [client_id]
    assert client.get("/internal/v1/apps?review=maybe", headers=h).status_code == 400
    no_reason = client.post(f"/internal/v1/apps/{client_id}/review", json={"decision": "reject"}, headers=h)
    assert no_reason.status_code == 400 and "reason" in no_reason.get_json()["errors"]
    rejected = client.post(
        f"/internal/v1/apps/{client_id}/review",
        json={"decision": "reject", "reason": "no privacy policy"},
        headers=h,
    )
    assert rejected.status_code == 200 and rejected.get_json()["review"] == "rejected"
    session_sign_in(client, w.outsider)
    assert "rejected by the platform operator: no privacy policy" in client.get(
        f"/developer/apps/{client_id}"
    ).get_data(as_text=True)
    mini = client.post(f"/internal/v1/apps/{w.client_id}/review", json={"decision": "maybe"}, headers=h)
    assert mini.status_code == 400
    approved = client.post(f"/internal/v1/apps/{client_id}/review", json={"decision": "approve"}, headers=h)
    assert approved.get_json()["review"] == "approved"

    session_sign_in(client, w.admin)
    center = client.get(f"/admin/orgs/{w.oid}/app-center").get_data(as_text=True)
    listing = center.split(f'data-client-id="{client_id}"')[1].split("</li>")[0]
    assert "Outsider" in listing and FORM["contact"] in listing
    assert "https://shifts.example.com/terms" in listing and FORM["privacy_policy_url"] in listing
    install_page = client.get(f"/admin/orgs/{w.oid}/apps/{client_id}/install").get_data(as_text=True)
    assert 'id="read-terms"' in install_page and "https://shifts.example.com/terms" in install_page
    assert install(client, w, client_id).status_code == 303
    assert inst_svc.get_installation(store, client_id, w.oid) is not None


def test_members_are_told_in_the_privacy_center_who_decided_what_and_when(
    client, store, settings, world
) -> None:
    w = world
    session_sign_in(client, w.admin)
    assert install(client, w).status_code == 303
    session_sign_in(client, w.member)
    page = client.get("/privacy").get_data(as_text=True)
    section = page.split('id="notices-h"')[1].split("</section>")[0]
    assert "Admin added Roster to Acme." in section and 'class="badge"' in section
    assert 'data-field="nickname"' in section  # which fields it receives
    again = client.get("/privacy").get_data(as_text=True).split('id="notices-h"')[1].split("</section>")[0]
    assert 'class="badge"' not in again  # seen once, no longer new

    session_sign_in(client, w.admin)
    assert client.post(f"/admin/orgs/{w.oid}/apps/{w.client_id}/disable").status_code == 303
    session_sign_in(client, w.member)
    told = client.get("/privacy/v1/notices").get_json()["notices"]
    assert [(n["what"], n["who_name"], n["new"]) for n in told][-2:] == [
        ("disabled", "Admin", True),
        ("installed", "Admin", False),
    ]
    assert all(n["org_name"] == "Acme" and n["app_name"] == "Roster" for n in told)
    session_sign_in(client, w.outsider)
    assert client.get("/privacy/v1/notices").get_json()["notices"] == []  # not a member: nothing


def test_admin_pages_name_people_and_never_show_ids_or_raw_json(app, client, store, settings, world) -> None:
    """Readable history pages (issue 13 item 9, issue 14 item 1): the overview's disclosures, the
    audit trail, the members, sub-admins and requests pages name people; no page prints a platform
    id or a raw JSON record."""
    from tests.support.privacy import sequence

    w = world
    session_sign_in(client, w.member)
    client.post(f"/admin/orgs/{w.oid}/requests", data={"client_id": w.other_app, "reason": "payroll"})
    session_sign_in(client, w.admin)
    assert install(client, w).status_code == 303
    client.post(f"/admin/orgs/{w.oid}/admins", data={"user_id": w.member, "permissions": "disclosures.read"})
    token = org_token(store, settings, w)
    assert (
        client.get(f"/v1/orgs/{w.oid}/members", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    sequence(store, settings)
    people = [w.owner, w.admin, w.apps_sub, w.members_sub, w.member]
    for path in ("", "audit", "members", "admins", "requests", f"apps/{w.client_id}", "policy", "app-center"):
        html = client.get(f"/admin/orgs/{w.oid}/{path}").get_data(as_text=True)
        for uid in people:
            assert uid not in html.replace(f'value="{uid}"', "").replace(f"/{uid}/", "/"), (path, uid)
        assert '{"' not in html, path  # no raw JSON
    overview = client.get(f"/admin/orgs/{w.oid}/").get_data(as_text=True)
    table = overview.split('class="disclosures"')[1].split("</table>")[0]
    assert (
        "Member" in overview and all(n in table for n in ("Owner", "Admin", "Member")) and "Roster" in table
    )
    audit = client.get(f"/admin/orgs/{w.oid}/audit").get_data(as_text=True)
    assert "user: Member" in audit and "app: Roster" in audit


def test_the_admin_changes_what_an_installation_receives_from_its_page(
    client, store, settings, world
) -> None:
    """Incremental consent for installations (issue 14, item 5): the grant_url of an organization
    token's insufficient_scope is the installation's page, whose scope form the admin saves."""
    w = world
    session_sign_in(client, w.admin)
    assert install(client, w).status_code == 303
    page = client.get(f"/admin/orgs/{w.oid}/apps/{w.client_id}?add_scope=org.members.read").get_data(
        as_text=True
    )
    assert 'id="scopes-form"' in page and 'value="org.members.read" checked' in page
    bad = client.post(f"/admin/orgs/{w.oid}/apps/{w.client_id}/scopes", data={"scopes": ["nope"]})
    assert bad.status_code == 303
    assert "not requested by the app" in client.get(f"/admin/orgs/{w.oid}/apps/{w.client_id}").get_data(
        as_text=True
    )
    assert inst_svc.require_installation(store, w.client_id, w.oid)["scopes"] == ["org.members.read"]
    saved = client.post(
        f"/admin/orgs/{w.oid}/apps/{w.client_id}/scopes", data={"scopes": ["org.members.read"]}
    )
    assert saved.status_code == 303
    assert "Saved what Roster may receive." in client.get(f"/admin/orgs/{w.oid}/apps/{w.client_id}").get_data(
        as_text=True
    )
    session_sign_in(client, w.member)
    assert (
        client.post(
            f"/admin/orgs/{w.oid}/apps/{w.client_id}/scopes", data={"scopes": ["org.members.read"]}
        ).status_code
        == 403
    )
