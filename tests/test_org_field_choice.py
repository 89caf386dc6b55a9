"""Field-level choice for org apps (issue 13, item 2): the catalog's organization scopes beyond
org.members.read (department names, the org's name) with texts for the admin in English and Chinese;
the admin (console form, console API) or the platform API chooses the member fields per installation
within what the app requests; the gate releases exactly those, the ledger records exactly those, the
app is told (``installation.updated``), members see a notice naming them, the audit trail notes it,
explain agrees with the data API; bad choices are refused with nothing changed."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.consent import org_admin
from broker.core import catalog as catalog_mod
from broker.directory import departments
from broker.directory.service import set_role
from tests.support.apps import org_payload, outbox_events
from tests.support.factories import installation_token, make_org, make_user
from tests.support.ledger import journal_records
from tests.support.signin import session_sign_in

ALL_ORG_SCOPES = ["org.members.read", "org.departments.read", "org.read"]


@pytest.fixture
def w(app, store, settings) -> dict[str, Any]:
    app.config["WTF_CSRF_ENABLED"] = False
    people = {n: make_user(store, username=n, nickname=n.capitalize()) for n in ("owner", "ann", "bob")}
    oid = make_org(store, list(people.values()), name="Acme")
    set_role(store, oid, people["owner"], "owner")
    catalog = catalog_mod.load(settings.scopes_dir)
    record, _, _ = apps_svc.register_app(
        store, settings, catalog, org_payload(make_user(store), name="Team Roster", scopes=ALL_ORG_SCOPES)
    )
    eng = departments.create(store, oid, "Engineering")["id"]
    web = departments.create(store, oid, "Web", eng)["id"]
    departments.assign(store, oid, people["ann"], [eng, web])
    return {
        "oid": oid,
        "client_id": record["client_id"],
        "catalog": catalog,
        "eng": eng,
        "web": web,
        **people,
    }


def _token(store: Any, settings: Any, w: dict[str, Any]) -> str:
    return installation_token(store, settings, w["client_id"], w["oid"], " ".join(ALL_ORG_SCOPES))


def _members(client: Any, oid: str, token: str) -> list[dict[str, Any]]:
    resp = client.get(f"/v1/orgs/{oid}/members", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["members"]


def test_the_catalog_has_organization_scopes_with_admin_texts_in_both_languages(settings) -> None:
    catalog = catalog_mod.load(settings.scopes_dir)
    assert catalog.scope_names("organization") == sorted(ALL_ORG_SCOPES)
    for scope in ALL_ORG_SCOPES:
        for name in catalog.scopes[scope].fields:
            field = catalog.fields[name]
            assert field.admin_description and set(field.admin_description) == {"en", "zh"}
            assert field.described("en", "organization") != field.described("en")  # not "Your ..."
            assert field.described("zh", "organization") == field.admin_description["zh"]
    assert catalog.fields["departments"].type == "list"
    assert catalog.scopes["org.departments.read"].separate_consent
    # what a person agreed to did not change by adding the admin's texts: no one is asked again
    # (the digest as it was computed before fields had ``type`` and ``admin_description``)
    scope = catalog.scopes["profile"]
    before = {
        "scope": {**vars(scope), "fields": list(scope.fields)},
        "fields": {
            f: {k: v for k, v in vars(catalog.fields[f]).items() if k not in ("type", "admin_description")}
            for f in scope.fields
        },
    }
    text = json.dumps(before, sort_keys=True, ensure_ascii=False)
    assert catalog.scope_version("profile") == hashlib.sha256(text.encode()).hexdigest()[:12]


def test_a_catalog_without_the_admins_text_for_an_org_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        textwrap.dedent(
            """
            [fields.user_id]
            sensitivity = "low"
            shareable = true
            basic = true
            required = true
            description.en = "id"
            description.zh = "id"
            [scopes.openid]
            audience = "individual"
            fields = ["user_id"]
            description.en = "x"
            description.zh = "x"
            [scopes."org.members.read"]
            audience = "organization"
            fields = ["user_id"]
            description.en = "x"
            description.zh = "x"
            """
        )
    )
    with pytest.raises(
        catalog_mod.CatalogError, match=r"org\.members\.read: field 'user_id' .*admin_description"
    ):
        catalog_mod.load(tmp_path)


def test_the_admin_chooses_nickname_only_and_the_app_receives_exactly_that(
    client, store, settings, w
) -> None:
    oid, cid = w["oid"], w["client_id"]
    session_sign_in(client, w["owner"])
    form = client.get(f"/admin/orgs/{oid}/apps/{cid}/install").get_data(as_text=True)
    # every field of every requested scope, in the admin's words; the separate scopes start unticked
    assert re.findall(r'class="shared-field" data-field="(\w+)"', form) == [
        "user_id",
        "nickname",
        "avatar",
        "departments",
        "org_name",
    ]
    assert (
        "Each member&#39;s nickname" in form and "The names of the departments each member belongs to" in form
    )
    ticked = re.findall(r'name="scopes" value="([\w.]+)" checked', form)
    assert ticked == ["org.members.read"]
    added = client.post(
        f"/admin/orgs/{oid}/apps/{cid}/install",
        data={"field_choice": "1", "scopes": ["org.members.read"], "fields": ["nickname"]},
    )
    assert added.status_code == 303
    inst = inst_svc.require_installation(store, cid, oid)
    assert inst["fields"] == ["user_id", "nickname"]  # the app's id for each member always flows
    assert [
        e["data"]["fields"] for e in outbox_events(store, cid) if e["type"] == "installation.installed"
    ] == [["user_id", "nickname"]]
    page = client.get(f"/admin/orgs/{oid}/apps/{cid}").get_data(as_text=True)
    flowing = page.split("receives these fields", 1)[1].split("</ul>", 1)[0]
    assert "nickname" in flowing and "avatar" not in flowing

    token = _token(store, settings, w)
    members = _members(client, oid, token)
    assert len(members) == 3 and all(set(m) == {"user_id", "nickname"} for m in members)
    assert {m["nickname"] for m in members} == {"Owner", "Ann", "Bob"}
    assert {tuple(r["fields"]) for r in journal_records(store, cid)} == {("nickname", "user_id")}

    # explain (the gate's own rule) says the same
    explained = client.get(f"/admin/v1/orgs/{oid}/installations/{cid}/explain").get_json()["fields"]
    assert [r["field"] for r in explained if r["released"]] == ["user_id", "nickname"]
    assert {r["field"]: r["reasons"] for r in explained}["avatar"] == ["not_in_installation"]


def test_departments_and_the_org_name_flow_when_chosen(client, store, settings, w) -> None:
    oid, cid = w["oid"], w["client_id"]
    session_sign_in(client, w["owner"])
    added = client.post(
        f"/admin/v1/orgs/{oid}/installations",
        json={"client_id": cid, "scopes": ALL_ORG_SCOPES, "fields": ["departments", "org_name"]},
    )
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["fields"] == ["user_id", "departments", "org_name"]
    members = {m["user_id"]: m for m in _members(client, oid, _token(store, settings, w))}
    assert all(set(m) == {"user_id", "departments", "org_name"} for m in members.values())
    assert sorted(tuple(m["departments"]) for m in members.values()) == [(), (), ("Engineering", "Web")]
    assert {m["org_name"] for m in members.values()} == {"Acme"}


def test_a_narrower_choice_takes_effect_on_the_next_request_and_everyone_is_told(
    client, store, settings, w
) -> None:
    oid, cid = w["oid"], w["client_id"]
    inst_svc.install(store, cid, oid, ALL_ORG_SCOPES, w["owner"])  # before any choice: every field
    token = _token(store, settings, w)
    assert set(_members(client, oid, token)[0]) == {
        "user_id",
        "nickname",
        "avatar",
        "departments",
        "org_name",
    }

    session_sign_in(client, w["owner"])
    start = len(outbox_events(store, cid))
    changed = client.patch(
        f"/admin/v1/orgs/{oid}/installations/{cid}",
        json={"scopes": ["org.members.read", "org.departments.read"], "fields": ["avatar", "departments"]},
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["fields"] == ["user_id", "avatar", "departments"]
    assert all(set(m) == {"user_id", "avatar", "departments"} for m in _members(client, oid, token))
    [event] = outbox_events(store, cid)[start:]
    assert event["type"] == "installation.updated"
    assert event["data"]["fields"] == ["user_id", "avatar", "departments"]
    audit = org_admin.audit_trail(store, oid)[0]
    assert audit["what"] == "installation.updated" and audit["details"]["fields"] == event["data"]["fields"]

    # the member's notice names exactly the fields, in the member's own words
    session_sign_in(client, w["ann"])
    notice = client.get("/privacy/v1/notices").get_json()["notices"][0]
    assert notice["what"] == "updated" and [f["name"] for f in notice["fields"]] == [
        "user_id",
        "avatar",
        "departments",
    ]
    assert (
        notice["fields"][2]["description"] == "The names of the departments you belong to in the organization"
    )

    # the same choice again changes nothing and tells nobody
    session_sign_in(client, w["owner"])
    again = client.patch(
        f"/admin/v1/orgs/{oid}/installations/{cid}",
        json={"scopes": ["org.members.read", "org.departments.read"], "fields": ["avatar", "departments"]},
    )
    assert again.status_code == 200 and len(outbox_events(store, cid)) == start + 1

    # adding a scope back without naming fields keeps the choice and brings the new scope's fields
    widened = client.patch(f"/admin/v1/orgs/{oid}/installations/{cid}", json={"scopes": ALL_ORG_SCOPES})
    assert widened.get_json()["fields"] == ["user_id", "avatar", "departments", "org_name"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"scopes": ["org.members.read"], "fields": ["departments"]}, "not shared by the chosen scopes"),
        ({"scopes": ["org.members.read"], "fields": ["mobile"]}, "not shared by the chosen scopes"),
        (
            {"scopes": ["org.departments.read"], "fields": []},
            "choose at least one field of org.departments.read",
        ),
        ({"fields": ["nickname"], "enabled": False}, "either enabled, or scopes and/or fields"),
        ({"fields": "nickname"}, "Not a valid list."),
    ],
)
def test_bad_choices_are_refused_with_nothing_changed(client, store, settings, w, body, problem) -> None:
    oid, cid = w["oid"], w["client_id"]
    inst_svc.install(store, cid, oid, ["org.members.read"], w["owner"], None, ["nickname"], w["catalog"])
    before = inst_svc.require_installation(store, cid, oid)
    events = len(outbox_events(store, cid))
    session_sign_in(client, w["owner"])
    resp = client.patch(f"/admin/v1/orgs/{oid}/installations/{cid}", json=body)
    assert resp.status_code == 400
    assert problem in str(resp.get_json()["errors"])
    assert inst_svc.require_installation(store, cid, oid) == before
    assert len(outbox_events(store, cid)) == events


def test_the_form_keeps_the_admins_ticks_when_it_refuses(client, store, w) -> None:
    oid, cid = w["oid"], w["client_id"]
    session_sign_in(client, w["owner"])
    refused = client.post(
        f"/admin/orgs/{oid}/apps/{cid}/install",
        data={"field_choice": "1", "scopes": ["org.members.read", "org.read"], "fields": ["avatar"]},
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "choose at least one field of org.read" in html
    assert inst_svc.get_installation(store, cid, oid) is None
    assert re.findall(r'name="scopes" value="([\w.]+)" checked', html) == ["org.members.read", "org.read"]
    assert re.findall(r'name="fields" value="(\w+)" checked', html) == ["user_id", "avatar"]


def test_the_platform_api_chooses_fields_too(client, store, settings, w) -> None:
    oid, cid = w["oid"], w["client_id"]
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    made = client.post(
        f"/internal/v1/orgs/{oid}/installations",
        json={"client_id": cid, "scopes": ["org.members.read"], "fields": ["avatar"]},
        headers=auth,
    )
    assert made.status_code == 201 and made.get_json()["fields"] == ["user_id", "avatar"]
    bad = client.patch(
        f"/internal/v1/orgs/{oid}/installations/{cid}",
        json={"fields": ["nickname"], "enabled": True},
        headers=auth,
    )
    assert bad.status_code == 400
    changed = client.patch(
        f"/internal/v1/orgs/{oid}/installations/{cid}", json={"fields": ["nickname"]}, headers=auth
    )
    assert changed.status_code == 200 and changed.get_json()["fields"] == ["user_id", "nickname"]
    assert all(set(m) == {"user_id", "nickname"} for m in _members(client, oid, _token(store, settings, w)))
    assert org_admin.audit_trail(store, oid)[0]["who"] == "platform"
    listed = client.get(f"/internal/v1/orgs/{oid}/installations", headers=auth).get_json()["installations"]
    assert listed[0]["fields"] == ["user_id", "nickname"]


def test_only_the_members_an_app_covers_are_told(client, store, w) -> None:
    oid, cid = w["oid"], w["client_id"]
    inst_svc.install(
        store, cid, oid, ["org.members.read"], w["owner"], [w["eng"]], ["nickname"], w["catalog"]
    )

    def told(uid: str) -> list[str]:
        session_sign_in(client, uid)
        return [n["what"] for n in client.get("/privacy/v1/notices").get_json()["notices"] if n["app"] == cid]

    assert told(w["ann"]) == ["installed"]  # in Engineering
    assert told(w["bob"]) == []  # in no department: the app receives nothing about him
    inst_svc.remove(store, cid, oid, w["owner"])
    assert told(w["bob"]) == []
    assert told(w["ann"]) == ["removed", "installed"]
    departments.assign(store, oid, w["bob"], [w["web"]])  # a sub-department of Engineering
    assert told(w["bob"]) == ["removed", "installed"]


def test_an_admin_approving_a_members_request_chooses_the_fields_too(client, store, w) -> None:
    oid, cid = w["oid"], w["client_id"]
    session_sign_in(client, w["ann"])
    asked = client.post(f"/admin/v1/orgs/{oid}/requests", json={"client_id": cid, "reason": "rosters"})
    assert asked.status_code == 201
    request_id = asked.get_json()["id"]

    session_sign_in(client, w["owner"])
    page = client.get(f"/admin/orgs/{oid}/requests").get_data(as_text=True)
    assert re.findall(r'name="scopes" value="([\w.]+)" checked', page) == ["org.members.read"]
    assert 'name="fields" value="nickname" checked' in page
    refused = client.post(
        f"/admin/v1/orgs/{oid}/requests/{request_id}/decision",
        json={"decision": "approve", "scopes": ["org.members.read"], "fields": ["org_name"]},
    )
    assert refused.status_code == 400 and "fields" in refused.get_json()["errors"]
    assert inst_svc.get_installation(store, cid, oid) is None
    listed = client.get(f"/admin/v1/orgs/{oid}/requests").get_json()["requests"]
    assert [r["status"] for r in listed if r["id"] == request_id] == ["pending"]  # nothing changed
    approved = client.post(
        f"/admin/orgs/{oid}/requests/{request_id}/approve",
        data={
            "field_choice": "1",
            "scopes": ["org.members.read", "org.read"],
            "fields": ["nickname", "org_name"],
        },
    )
    assert approved.status_code == 303
    assert inst_svc.require_installation(store, cid, oid)["fields"] == ["user_id", "nickname", "org_name"]
