"""Departments in the admin console (issue 13, items 1, 2 and 6): an admin builds the tree, puts
members in departments and limits Team Roster to one department; the app's members page shows exactly
those members, a member moved out disappears from its next page, the app is told; counts and impact
previews follow; cycles and bad ids are refused with nothing changed; ``members.manage`` decides."""

from __future__ import annotations

import re
from typing import Any

import pytest

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.consent import org_admin
from broker.core import catalog as catalog_mod
from broker.core.pairwise import pairwise_id
from broker.directory import departments
from broker.directory.service import set_role
from broker.storage import keys
from tests.support.apps import org_payload, outbox_events
from tests.support.factories import make_org, make_token, make_user
from tests.support.signin import session_sign_in


@pytest.fixture
def w(app, store, settings) -> dict[str, Any]:
    app.config["WTF_CSRF_ENABLED"] = False
    people = {
        n: make_user(store, username=n, nickname=n.capitalize())
        for n in ("owner", "memsub", "appsub", "ann", "bob", "cid")
    }
    oid = make_org(store, list(people.values()), name="Acme")
    set_role(store, oid, people["owner"], "owner")
    set_role(store, oid, people["memsub"], "sub_admin", ["members.manage"])
    set_role(store, oid, people["appsub"], "sub_admin", ["apps.manage"])
    catalog = catalog_mod.load(settings.scopes_dir)
    record, _, _ = apps_svc.register_app(
        store, settings, catalog, org_payload(make_user(store), name="Team Roster")
    )
    return {"oid": oid, "client_id": record["client_id"], **people}


def _flash(html: str) -> list[str]:
    return re.findall(r'<p class="flash (?:error|success)"[^>]*>([^<]*)</p>', html)


def _create(client: Any, oid: str, name: str, parent: str = "") -> list[str]:
    """Create a department through the console form; returns the flash messages shown after."""
    resp = client.post(
        f"/admin/orgs/{oid}/departments", data={"name": name, "parent": parent}, follow_redirects=True
    )
    assert resp.status_code == 200
    return _flash(resp.get_data(as_text=True))


def _dep_id(store: Any, oid: str, name: str) -> str:
    return next(d["id"] for d in departments.listing(store, oid) if d["name"] == name)


def _members(client: Any, oid: str, token: str) -> list[str]:
    resp = client.get(f"/v1/orgs/{oid}/members", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    return [m["user_id"] for m in resp.get_json()["members"]]


def test_an_admin_limits_team_roster_to_one_department_and_the_app_sees_exactly_it(
    client, store, settings, w
) -> None:
    oid, cid = w["oid"], w["client_id"]
    session_sign_in(client, w["owner"])
    assert "No departments yet." in client.get(f"/admin/orgs/{oid}/departments").get_data(as_text=True)
    _create(client, oid, "Engineering")
    eng = _dep_id(store, oid, "Engineering")
    _create(client, oid, "Web", eng)
    assert _create(client, oid, "Sales") == ["Department Sales created."]
    web, sales = _dep_id(store, oid, "Web"), _dep_id(store, oid, "Sales")
    listing = client.get(f"/admin/orgs/{oid}/departments").get_data(as_text=True)
    assert "Engineering / Web" in listing and listing.count('class="department"') == 3

    for person, dep in ((w["ann"], eng), (w["bob"], web), (w["cid"], sales)):
        joined = client.post(f"/admin/orgs/{oid}/departments/{dep}/join", data={"user_id": person})
        assert joined.status_code == 303
    page = client.get(f"/admin/orgs/{oid}/departments/{web}").get_data(as_text=True)
    assert "Members (1)" in page and f'data-user="{w["bob"]}"' in page and "Engineering / Web" in page

    form = client.get(f"/admin/orgs/{oid}/apps/{cid}/install").get_data(as_text=True)
    assert 'name="coverage" value="departments"' in form and "Engineering / Web" in form
    none_ticked = client.post(
        f"/admin/orgs/{oid}/apps/{cid}/install",
        data={"scopes": ["org.members.read"], "coverage": "departments"},
    )
    assert none_ticked.status_code == 400 and "choose at least one department" in none_ticked.get_data(
        as_text=True
    )
    assert inst_svc.get_installation(store, cid, oid) is None
    added = client.post(
        f"/admin/orgs/{oid}/apps/{cid}/install",
        data={"scopes": ["org.members.read"], "coverage": "departments", "departments": [eng]},
    )
    assert added.status_code == 303
    app_page = client.get(f"/admin/orgs/{oid}/apps/{cid}").get_data(as_text=True)
    assert 'id="covered-count">2<' in app_page and "The members of Engineering and of their" in app_page
    assert "receives these fields of each of the 2 members" in app_page
    preview = client.get(f"/admin/orgs/{oid}/apps/{cid}/disable").get_data(as_text=True)
    assert '<strong id="impact-members">2</strong>' in preview

    inst = inst_svc.require_installation(store, cid, oid)
    token = make_token(
        store, settings, cid, kind="installation", subject=oid, grant_id=inst["id"], scopes="org.members.read"
    )
    pw = {u: pairwise_id(settings.pairwise_key, cid, w[u], oid) for u in ("ann", "bob", "cid")}
    assert _members(client, oid, token) == [pw["ann"], pw["bob"]]

    start = len(outbox_events(store, cid))
    out = client.post(f"/admin/orgs/{oid}/departments/{web}/members/{w['bob']}/remove")
    assert out.status_code == 303
    assert _members(client, oid, token) == [pw["ann"]]  # the very next page
    assert [(e["type"], e["data"]["user_id"]) for e in outbox_events(store, cid)[start:]] == [
        ("member.removed", pw["bob"])
    ]

    # the app page changes the choice: Sales as well; installation.updated, cid comes in
    start = len(outbox_events(store, cid))
    changed = client.post(
        f"/admin/orgs/{oid}/apps/{cid}/departments",
        data={"coverage": "departments", "departments": [eng, sales]},
    )
    assert changed.status_code == 303
    assert "Team Roster now covers 2 members." in _flash(
        client.get(f"/admin/orgs/{oid}/apps/{cid}").get_data(as_text=True)
    )
    assert _members(client, oid, token) == [pw["ann"], pw["cid"]]
    kinds = [e["type"] for e in outbox_events(store, cid)[start:]]
    assert kinds == ["installation.updated", "member.added"]
    assert outbox_events(store, cid)[-2]["data"]["departments"] == [eng, sales]
    client.post(f"/admin/orgs/{oid}/apps/{cid}/departments", data={"coverage": "org"})
    assert len(_members(client, oid, token)) == 6
    whats = [a["what"] for a in org_admin.audit_trail(store, oid)]
    assert whats[:2] == ["installation.departments", "installation.departments"]
    assert {"department.created", "member.departments"} <= set(whats)
    # the members are told in the privacy center who changed what Team Roster covers
    from broker.consent import notices

    def told(uid: str) -> list[dict[str, Any]]:
        found = notices.for_person(store, catalog_mod.load(settings.scopes_dir), uid)
        return [n for n in found if n["what"] == "updated"]

    # Ann (Engineering) was covered by both choices; the owner (in no department) only by the last
    assert len(told(w["ann"])) == 2 and told(w["ann"])[0]["app"] == cid
    assert len(told(w["owner"])) == 1 and told(w["owner"])[0]["who"] == w["owner"]
    assert "departments" not in told(w["owner"])[0]  # the whole organization


def test_cycles_bad_ids_and_permissions_in_the_console(client, store, settings, w) -> None:
    oid = w["oid"]
    session_sign_in(client, w["memsub"])  # members.manage is enough for departments
    _create(client, oid, "A")
    a = _dep_id(store, oid, "A")
    _create(client, oid, "B", a)
    b = _dep_id(store, oid, "B")
    before = store.redis.hgetall(keys.org_departments(oid))

    page = client.get(f"/admin/orgs/{oid}/departments/{a}").get_data(as_text=True)
    assert f'<option value="{b}"' not in page  # its own sub-department is not offered
    cycle = client.post(f"/admin/orgs/{oid}/departments/{a}/move", data={"parent": b}, follow_redirects=True)
    assert any("sub-departments" in m for m in _flash(cycle.get_data(as_text=True)))
    empty = client.post(f"/admin/orgs/{oid}/departments", data={"name": "  "}, follow_redirects=True)
    assert any("name" in m for m in _flash(empty.get_data(as_text=True)))
    bad_parent = client.post(
        f"/admin/orgs/{oid}/departments",
        data={"name": "C", "parent": "dep_00000000000000ff"},
        follow_redirects=True,
    )
    assert any("parent" in m for m in _flash(bad_parent.get_data(as_text=True)))
    busy = client.post(f"/admin/orgs/{oid}/departments/{a}/delete", follow_redirects=True)
    assert any("sub-departments" in m for m in _flash(busy.get_data(as_text=True)))
    outsider = make_user(store, username="outsider")
    nobody = client.post(
        f"/admin/orgs/{oid}/departments/{a}/join", data={"user_id": outsider}, follow_redirects=True
    )
    assert any("not a member" in m for m in _flash(nobody.get_data(as_text=True)))
    assert store.redis.hgetall(keys.org_departments(oid)) == before
    assert store.redis.hgetall(keys.org_member_departments(oid)) == {}
    assert client.get(f"/admin/orgs/{oid}/departments/dep_00000000000000ff").status_code == 404
    assert (
        client.post(
            f"/admin/orgs/{oid}/departments/dep_00000000000000ff/rename", data={"name": "x"}
        ).status_code
        == 404
    )

    renamed = client.post(
        f"/admin/orgs/{oid}/departments/{b}/rename", data={"name": "Bee"}, follow_redirects=True
    )
    assert "Department renamed." in _flash(renamed.get_data(as_text=True))
    moved = client.post(f"/admin/orgs/{oid}/departments/{b}/move", data={"parent": ""}, follow_redirects=True)
    assert "Department moved." in _flash(moved.get_data(as_text=True))
    gone = client.post(f"/admin/orgs/{oid}/departments/{a}/delete", follow_redirects=True)
    assert "Department A deleted." in _flash(gone.get_data(as_text=True))
    assert [d["name"] for d in departments.listing(store, oid)] == ["Bee"]

    session_sign_in(client, w["appsub"])  # apps.manage only: no department pages
    assert client.get(f"/admin/orgs/{oid}/departments").status_code == 403
    assert client.post(f"/admin/orgs/{oid}/departments", data={"name": "X"}).status_code == 403
    session_sign_in(client, w["ann"])
    assert client.get(f"/admin/orgs/{oid}/departments").status_code == 403


def test_zh_hans_department_pages(client, store, settings, w) -> None:
    session_sign_in(client, w["owner"])
    page = client.get(f"/admin/orgs/{w['oid']}/departments", headers={"Accept-Language": "zh-Hans"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "No departments yet." not in html and "新建部门" in html


def test_the_privacy_center_lists_an_org_app_only_for_the_members_it_covers(
    client, store, settings, w
) -> None:
    oid, cid = w["oid"], w["client_id"]
    eng = departments.create(store, oid, "Engineering")["id"]
    departments.assign(store, oid, w["ann"], [eng])
    inst_svc.install(store, cid, oid, None, w["owner"], [eng])

    def listed(uid: str) -> list[str]:
        session_sign_in(client, uid)
        return [a["client_id"] for a in client.get("/privacy/v1/apps").get_json()["org_apps"]]

    assert listed(w["ann"]) == [cid] and listed(w["bob"]) == []
    session_sign_in(client, w["owner"])
    client.post(f"/admin/orgs/{oid}/departments/{eng}/join", data={"user_id": w["bob"]})
    assert listed(w["bob"]) == [cid]


def test_the_json_api_refuses_bad_input_and_follows_the_permissions(app, client, store, settings, w) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    oid, cid = w["oid"], w["client_id"]
    base = f"/admin/v1/orgs/{oid}"

    def csrf() -> dict[str, str]:
        return {"X-CSRFToken": client.get("/admin/v1/csrf-token").get_json()["csrf_token"]}

    session_sign_in(client, w["memsub"])
    h = csrf()
    dep = client.post(f"{base}/departments", json={"name": "Ops"}, headers=h).get_json()["id"]
    no_token = client.post(f"{base}/departments", json={"name": "Ops 2"})
    assert no_token.status_code == 400 and no_token.get_json()["error"] == "csrf_failed"
    for body in ({"name": ""}, {"name": "x", "parent": "dep_1"}, {"name": "x", "extra": 1}, ["x"]):
        assert client.post(f"{base}/departments", json=body, headers=h).status_code == 400, body
    assert client.patch(f"{base}/departments/{dep}", json={"parent": dep}, headers=h).status_code == 400
    assert client.get(f"{base}/departments/dep_00000000000000ff").status_code == 404
    bad = client.put(
        f"{base}/members/{w['ann']}/departments", json={"departments": ["dep_00000000000000ff"]}, headers=h
    )
    assert bad.status_code == 400 and "departments" in bad.get_json()["errors"]
    stranger = make_user(store, username="stranger")
    assert (
        client.put(
            f"{base}/members/{stranger}/departments", json={"departments": [dep]}, headers=h
        ).status_code
        == 404
    )
    # members.manage does not choose what an app covers
    assert (
        client.put(
            f"{base}/installations/{cid}/departments", json={"departments": None}, headers=h
        ).status_code
        == 403
    )

    session_sign_in(client, w["appsub"])
    h = csrf()
    assert client.get(f"{base}/departments").status_code == 403
    assert (
        client.put(
            f"{base}/installations/{cid}/departments", json={"departments": [dep]}, headers=h
        ).status_code
        == 404
    )
    refused = client.post(
        f"{base}/installations", json={"client_id": cid, "departments": ["dep_00000000000000ff"]}, headers=h
    )
    assert refused.status_code == 400 and inst_svc.get_installation(store, cid, oid) is None
    added = client.post(f"{base}/installations", json={"client_id": cid, "departments": [dep]}, headers=h)
    assert added.status_code == 201 and departments.installation_departments(store, oid, cid) == [dep]
    assert org_admin.audit_trail(store, oid)[0]["details"]["departments"] == [dep]
    whole = client.put(f"{base}/installations/{cid}/departments", json={"departments": None}, headers=h)
    assert whole.get_json() == {"departments": None, "covered_members": 6}
    empty = client.put(f"{base}/installations/{cid}/departments", json={"departments": []}, headers=h)
    assert empty.status_code == 400 and departments.installation_departments(store, oid, cid) is None
    done = client.put(f"{base}/installations/{cid}/departments", json={"departments": [dep]}, headers=h)
    assert done.get_json() == {"departments": [dep], "covered_members": 0}
