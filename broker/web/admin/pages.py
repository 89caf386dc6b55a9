"""The admin console's pages (``/console``, ``/admin/orgs/<oid>/...``)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request
from flask_babel import gettext

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.consent import org_admin, org_policy
from broker.consent.org_policy import (
    ADMINS_MANAGE,
    APPS_MANAGE,
    AUDIT_READ,
    DISCLOSURES_READ,
    MEMBERS_MANAGE,
    ORG_DISBAND,
    Role,
)
from broker.errors import Conflict, NotFound, ValidationFailed
from broker.gate import explain
from broker.web.admin import departments as dept_pages
from broker.web.admin.console import (
    ACTIONS,
    AddMemberSchema,
    PolicySchema,
    RequestSchema,
    SubAdminSchema,
    _add_member,
    _administer,
    _appoint,
    _center_rows,
    _change,
    _decide,
    _disband,
    _dismiss,
    _fail,
    _form_choice,
    _install,
    _member_rows,
    _names,
    _org,
    _page,
    _policy_rows,
    _remove_member,
    _role,
    _scope_rows,
    _set_choice,
    _set_policy,
    bp,
)
from broker.web.interactions import i18n, reauth
from broker.web.interactions import session as login_session
from broker.web.shared import consoles
from broker.web.shared import context as web


@bp.get("/console")
def console_home() -> Any:
    uid = login_session.login_required()
    orgs = org_admin.administered_orgs(web.store(), uid)
    return _page("admin/console.html", orgs=orgs)


# -- pages ------------------------------------------------------------------------------------------


@bp.get("/admin/orgs/<oid>/")
def overview(oid: str) -> Any:
    _, role = _administer(oid)
    store = web.store()
    installs = inst_svc.list_org_installations(store, oid)
    disclosures = consoles.org_disclosures(oid) if org_policy.allows(role, DISCLOSURES_READ) else None
    org_apps = [a for a in apps_svc.list_apps(store) if a["kind"] == "org_app"]
    names = {a["client_id"]: a["name"] for a in org_apps}
    suspended = {a["client_id"] for a in org_apps if a["status"] == "suspended"}
    pending = [r for r in org_admin.list_requests(store, oid) if r["status"] == "pending"]
    return _page(
        "admin/overview.html",
        org=_org(oid),
        role=role,
        installs=installs,
        names=names,
        suspended=suspended,
        members=org_admin.member_count(store, oid),
        pending=len(pending),
        may=_may(role),
        disclosures=disclosures,
        person_names=_known_names(
            sorted({str(r.get("person")) for r in (disclosures or {}).get("items", [])})
        ),
    )


def _may(role: Role) -> dict[str, bool]:
    return {
        p.replace(".", "_"): org_policy.allows(role, p)
        for p in (APPS_MANAGE, MEMBERS_MANAGE, DISCLOSURES_READ, ADMINS_MANAGE, AUDIT_READ, ORG_DISBAND)
    }


@bp.get("/admin/orgs/<oid>/app-center")
def app_center(oid: str) -> Any:
    uid, role = _role(oid, None)
    mine = {
        r["client_id"] for r in org_admin.list_requests(web.store(), oid, uid) if r["status"] == "pending"
    }
    return _page(
        "admin/app_center.html", org=_org(oid), apps=_center_rows(oid), may=_may(role), requested=mine
    )


@bp.get("/admin/orgs/<oid>/apps/<client_id>")
def app_page(oid: str, client_id: str) -> Any:
    _role(oid, APPS_MANAGE)
    store = web.store()
    record = org_admin.center_app(store, client_id)
    inst = inst_svc.get_installation(store, client_id, oid)
    catalog = web.catalog()
    flowing = (
        org_admin.field_rows(catalog, inst["scopes"], i18n.language(), inst_svc.released(catalog, inst))
        if inst
        else []
    )
    from broker.ledger import reading

    drift = {
        "asked": apps_svc.label_drift(web.catalog(), record),
        "received": apps_svc.received_beyond_label(reading.fields_received(store, client_id, 100), record),
    }
    cov = dept_pages.coverage_view(oid, client_id) if inst else None
    return _page(
        "admin/app.html",
        org=_org(oid),
        app=record,
        drift=drift,
        add_scope=request.args.get("add_scope", ""),
        inst=inst,
        flowing=flowing,
        # the fields ticked on the change form: what flows now, and every field of a scope the app asked for
        released=[*inst_svc.released(catalog, inst), *catalog.fields_of([request.args.get("add_scope", "")])]
        if inst
        else [],
        scope_rows=_scope_rows(record["scopes"]),
        members=cov["covered"] if cov else 0,  # the members it covers
        cov=cov,
    )


@bp.post("/admin/orgs/<oid>/apps/<client_id>/scopes")
def change_scopes_page(oid: str, client_id: str) -> Any:
    """Incremental consent for an installation (the grant_url of an organization token's
    insufficient_scope): the admin changes what the app may receive; installation.updated and the
    members' notices follow."""
    uid, _ = _role(oid, APPS_MANAGE)
    record = org_admin.center_app(web.store(), client_id)
    try:
        _set_choice(oid, uid, client_id, *_form_choice(request.form))
    except (ValidationFailed, NotFound) as exc:
        return _fail(exc, f"/admin/orgs/{oid}/apps/{client_id}")
    flash(gettext("Saved what %(app)s may receive.", app=record["name"]), "success")
    return redirect(f"/admin/orgs/{oid}/apps/{client_id}", code=303)


@bp.get("/admin/orgs/<oid>/apps/<client_id>/explain")
def explain_page(oid: str, client_id: str) -> Any:
    """What the app receives about each member, field by field, and why (the gate's own rule)."""
    _role(oid, APPS_MANAGE)
    record = org_admin.center_app(web.store(), client_id)
    catalog = web.catalog()
    rows = explain.explain_installation(web.store(), catalog, client_id, oid)
    described = {n: f.described(i18n.language(), "organization") for n, f in catalog.fields.items()}
    return _page("admin/explain.html", org=_org(oid), app=record, rows=rows, described=described)


def _new_cov(oid: str, chosen: list[str] | None) -> dict[str, Any]:
    """The coverage choice of the install form (nothing chosen yet: the whole organization)."""
    return {"departments": chosen, "chosen_ids": chosen or [], "rows": dept_pages.department_rows(oid)}


@bp.get("/admin/orgs/<oid>/apps/<client_id>/install")
def install_form(oid: str, client_id: str) -> Any:
    _role(oid, APPS_MANAGE)
    record = org_admin.center_app(web.store(), client_id)
    return _page(
        "admin/install.html",
        org=_org(oid),
        app=record,
        scope_rows=_scope_rows(record["scopes"]),
        errors={},
        cov=_new_cov(oid, None),
        picked=None,
    )


@bp.post("/admin/orgs/<oid>/apps/<client_id>/install")
def install_page(oid: str, client_id: str) -> Any:
    uid, _ = _role(oid, APPS_MANAGE)
    record = org_admin.center_app(web.store(), client_id)
    try:
        chosen = dept_pages.chosen_departments(request.form)
        scopes, fields = _form_choice(request.form)
        _install(oid, uid, client_id, scopes, chosen, fields)
    except ValidationFailed as exc:
        return _page(
            "admin/install.html",
            400,
            org=_org(oid),
            app=record,
            scope_rows=_scope_rows(record["scopes"]),
            errors=exc.fields or {},
            cov=_new_cov(oid, chosen),
            picked={"scopes": scopes, "fields": fields},
        )
    except Conflict as exc:
        return _fail(exc, f"/admin/orgs/{oid}/apps/{client_id}")
    flash(gettext("Added %(app)s to the organization.", app=record["name"]), "success")
    return redirect(f"/admin/orgs/{oid}/apps/{client_id}", code=303)


@bp.get("/admin/orgs/<oid>/apps/<client_id>/<action>")
def preview(oid: str, client_id: str, action: str) -> Any:
    if action not in ACTIONS:
        raise NotFound("no such page")
    _role(oid, APPS_MANAGE)
    record = org_admin.center_app(web.store(), client_id)
    found = org_admin.impact(web.store(), web.catalog(), oid, client_id, action)
    for row in found["field_rows"]:
        if row["name"] in web.catalog().fields:
            row["description"] = web.catalog().fields[row["name"]].described(i18n.language(), "organization")
    return _page("admin/preview.html", org=_org(oid), app=record, impact=found)


@bp.post("/admin/orgs/<oid>/apps/<client_id>/<action>")
def change_page(oid: str, client_id: str, action: str) -> Any:
    if action not in ACTIONS:
        raise NotFound("no such page")
    uid, _ = _role(oid, APPS_MANAGE)
    record = org_admin.center_app(web.store(), client_id)
    _change(oid, uid, client_id, action)
    done = {
        "disable": gettext("Switched off %(app)s.", app=record["name"]),
        "enable": gettext("Switched on %(app)s.", app=record["name"]),
        "remove": gettext("Removed %(app)s.", app=record["name"]),
    }[action]
    flash(done, "success")
    return redirect(f"/admin/orgs/{oid}/apps/{client_id}", code=303)


@bp.get("/admin/orgs/<oid>/requests")
def requests_page(oid: str) -> Any:
    _role(oid, APPS_MANAGE)
    store = web.store()
    rows = org_admin.list_requests(store, oid)
    names = _names(
        sorted({r["requester"] for r in rows} | {r["decided_by"] for r in rows if r["decided_by"]})
    )
    apps = {a["client_id"]: a for a in apps_svc.list_apps(store) if a["kind"] == "org_app"}
    scope_rows = {cid: _scope_rows(a["scopes"]) for cid, a in apps.items()}
    return _page(
        "admin/requests.html", org=_org(oid), rows=rows, names=names, apps=apps, scope_rows=scope_rows
    )


@bp.post("/admin/orgs/<oid>/requests")
def create_request_page(oid: str) -> Any:
    uid, _ = _role(oid, None)
    try:
        data = consoles.load(RequestSchema(), {k: v for k, v in request.form.items() if k != "csrf_token"})
        record = org_admin.request_app(web.store(), oid, uid, data["client_id"], data["reason"])
    except (ValidationFailed, Conflict) as exc:
        return _fail(exc, f"/admin/orgs/{oid}/app-center")
    flash(gettext("Your request was sent to the organization's admins."), "success")
    return redirect(f"/admin/orgs/{oid}/requests/mine#{record['id']}", code=303)


@bp.get("/admin/orgs/<oid>/requests/mine")
def my_requests_page(oid: str) -> Any:
    uid, _ = _role(oid, None)
    store = web.store()
    rows = org_admin.list_requests(store, oid, uid)
    names = _names(sorted({r["decided_by"] for r in rows if r["decided_by"]}))
    apps = {a["client_id"]: a["name"] for a in apps_svc.list_apps(store)}
    return _page("admin/my_requests.html", org=_org(oid), rows=rows, names=names, apps=apps)


@bp.post("/admin/orgs/<oid>/requests/<request_id>/<decision>")
def decide_page(oid: str, request_id: str, decision: str) -> Any:
    if decision not in ("approve", "deny"):
        raise NotFound("no such page")
    uid, _ = _role(oid, APPS_MANAGE)
    scopes, fields = _form_choice(request.form) if decision == "approve" else ([], None)
    try:
        reason = request.form.get("reason", "")
        _decide(
            oid, uid, request_id, decision == "approve", reason, scopes or None, fields if scopes else None
        )
    except (ValidationFailed, Conflict) as exc:
        return _fail(exc, f"/admin/orgs/{oid}/requests")
    flash(gettext("Approved: the app is added.") if decision == "approve" else gettext("Denied."), "success")
    return redirect(f"/admin/orgs/{oid}/requests", code=303)


@bp.get("/admin/orgs/<oid>/policy")
def policy_page(oid: str) -> Any:
    _role(oid, APPS_MANAGE)
    policy = org_admin.app_policy(web.store(), oid)
    return _page("admin/policy.html", org=_org(oid), policy=policy, rows=_policy_rows(oid))


@bp.post("/admin/orgs/<oid>/policy")
def set_policy_page(oid: str) -> Any:
    uid, _ = _role(oid, APPS_MANAGE)
    allowed, blocked = [], []
    for key, value in request.form.items():
        if key.startswith("app:"):
            if value == "allowed":
                allowed.append(key[4:])
            elif value == "blocked":
                blocked.append(key[4:])
    payload = {
        "allow_member_mini_programs": request.form.get("allow_member_mini_programs") == "1",
        "allowed_apps": allowed,
        "blocked_apps": blocked,
    }
    try:
        result = _set_policy(oid, uid, consoles.load(PolicySchema(), payload))
    except ValidationFailed as exc:
        return _fail(exc, f"/admin/orgs/{oid}/policy")
    flash(
        gettext("Saved. Grants ended by the new policy: %(count)s.", count=result["grants_ended"]), "success"
    )
    return redirect(f"/admin/orgs/{oid}/policy", code=303)


@bp.get("/admin/orgs/<oid>/members")
def members_page(oid: str) -> Any:
    _, role = _role(oid, MEMBERS_MANAGE)
    return _page(
        "admin/members.html",
        org=_org(oid),
        rows=_member_rows(oid),
        may_remove_sub_admins=org_policy.allows(role, ADMINS_MANAGE),
    )


@bp.post("/admin/orgs/<oid>/members")
def add_member_page(oid: str) -> Any:
    uid, _ = _role(oid, MEMBERS_MANAGE)
    try:
        data = consoles.load(AddMemberSchema(), {"username": request.form.get("username", "").strip()})
        added = _add_member(oid, uid, data["username"])
    except (ValidationFailed, Conflict) as exc:
        return _fail(exc, f"/admin/orgs/{oid}/members")
    flash(
        gettext("%(name)s was added to the organization.", name=_names([added["user_id"]])[added["user_id"]]),
        "success",
    )
    return redirect(f"/admin/orgs/{oid}/members", code=303)


@bp.post("/admin/orgs/<oid>/members/<target>/remove")
def remove_member_page(oid: str, target: str) -> Any:
    uid, role = _role(oid, MEMBERS_MANAGE)
    name = _names([target])[target]
    try:
        _remove_member(oid, uid, role, target)
    except (NotFound, Conflict) as exc:
        return _fail(exc, f"/admin/orgs/{oid}/members")
    flash(gettext("%(name)s was removed from the organization.", name=name), "success")
    return redirect(f"/admin/orgs/{oid}/members", code=303)


@bp.get("/admin/orgs/<oid>/admins")
def admins_page(oid: str) -> Any:
    _role(oid, ADMINS_MANAGE)
    rows = org_admin.roles(web.store(), oid)
    return _page(
        "admin/admins.html",
        org=_org(oid),
        rows=rows,
        names=_names([r["user_id"] for r in rows]),
        grantable=org_policy.GRANTABLE,
    )


@bp.post("/admin/orgs/<oid>/admins")
def appoint_page(oid: str) -> Any:
    uid, _ = _role(oid, ADMINS_MANAGE)
    payload = {"user_id": request.form.get("user_id", ""), "permissions": request.form.getlist("permissions")}
    try:
        data = consoles.load(SubAdminSchema(), payload)
        _appoint(oid, uid, data["user_id"], data["permissions"])
    except (ValidationFailed, Conflict) as exc:
        return _fail(exc, f"/admin/orgs/{oid}/admins")
    flash(gettext("Sub-admin saved."), "success")
    return redirect(f"/admin/orgs/{oid}/admins", code=303)


@bp.post("/admin/orgs/<oid>/admins/<target>/remove")
def dismiss_page(oid: str, target: str) -> Any:
    uid, _ = _role(oid, ADMINS_MANAGE)
    _dismiss(oid, uid, target)
    flash(gettext("Sub-admin removed."), "success")
    return redirect(f"/admin/orgs/{oid}/admins", code=303)


def _known_names(uids: list[str]) -> dict[str, str]:
    """Nicknames of those still in the directory (a page never shows a bare id)."""
    return {uid: name for uid, name in _names(uids).items() if name != uid}


@bp.get("/admin/orgs/<oid>/disband")
def disband_form(oid: str) -> Any:
    _role(oid, ORG_DISBAND)
    store = web.store()
    return _page(
        "admin/disband.html",
        org=_org(oid),
        members=org_admin.member_count(store, oid),
        installs=inst_svc.list_org_installations(store, oid),
        error=None,
    )


@bp.post("/admin/orgs/<oid>/disband")
def disband_page(oid: str) -> Any:
    uid, _ = _role(oid, ORG_DISBAND)
    org = _org(oid)
    password = reauth.password_given()
    try:
        _disband(oid, request.form.get("confirm", ""), uid, password)
    except (ValidationFailed, reauth.ReauthRequired) as exc:
        store = web.store()
        if isinstance(exc, reauth.ReauthRequired):
            error, status = (gettext("The password is wrong.") if password else reauth.message()), 403
        else:
            error, status = (exc.fields or {}).get("confirm", [exc.detail])[0], 400
        return _page(
            "admin/disband.html",
            status,
            org=org,
            members=org_admin.member_count(store, oid),
            installs=inst_svc.list_org_installations(store, oid),
            error=error,
        )
    flash(gettext("The organization %(org)s was disbanded.", org=org.get("name", oid)), "success")
    return redirect("/console", code=303)


# -- JSON API ---------------------------------------------------------------------------------------
