"""The admin console: an organization's App Center apps, member requests, sub-admins, audit, disband.

Pages live under ``/admin/orgs/<org_id>/``; the same operations as JSON under
``/admin/v1/orgs/<org_id>/``, authenticated by the session cookie with CSRF on (token from
``GET /admin/v1/csrf-token``, sent in ``X-CSRFToken``). Who may do what is
``broker.consent.org_policy``: a non-member gets 404 (an org's existence is private), a member
without the permission 403. Every change takes effect on the next data request (the gate re-reads
the installation) and is written to the org's audit trail after it succeeds.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request
from flask_babel import gettext
from marshmallow import RAISE, Schema, validate
from marshmallow import fields as mf

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.consent import org_admin, org_policy
from broker.consent.org_policy import ADMINS_MANAGE, APPS_MANAGE, AUDIT_READ, ORG_DISBAND, Role
from broker.core import ids
from broker.directory import service as directory
from broker.errors import Conflict, Forbidden, NotFound, ValidationFailed
from broker.web.interactions import i18n
from broker.web.interactions import session as login_session
from broker.web.ledger.api import LISTING
from broker.web.shared import consoles
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import Reply, documented
from broker.web.shared.responses import NO_STORE, no_store

bp = Blueprint("admin", __name__)

API = ("/admin/v1/",)
consoles.install_handlers(bp, API)

ACTIONS = ("disable", "enable", "remove")
_SCOPES = mf.List(mf.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(min=1, max=50))
_CLIENT_ID = validate.Regexp(apps_svc.CLIENT_ID_RE.pattern, error="not a client id")
_USER_ID = validate.Regexp(ids.USER_ID, error="not a user id")


class InstallSchema(Schema):
    class Meta:
        unknown = RAISE

    client_id = mf.String(required=True, validate=_CLIENT_ID)
    scopes = _SCOPES


class EnabledSchema(Schema):
    class Meta:
        unknown = RAISE

    enabled = mf.Boolean(required=True, truthy={True}, falsy={False})


class RequestSchema(Schema):
    class Meta:
        unknown = RAISE

    client_id = mf.String(required=True, validate=_CLIENT_ID)
    reason = mf.String(load_default="", validate=validate.Length(max=1000))


class DecisionSchema(Schema):
    class Meta:
        unknown = RAISE

    decision = mf.String(required=True, validate=validate.OneOf(["approve", "deny"]))
    reason = mf.String(load_default="", validate=validate.Length(max=1000))
    scopes = _SCOPES


class SubAdminSchema(Schema):
    class Meta:
        unknown = RAISE

    user_id = mf.String(required=True, validate=_USER_ID)
    permissions = mf.List(mf.String(validate=validate.OneOf(org_policy.GRANTABLE)), required=True)


class DisbandSchema(Schema):
    class Meta:
        unknown = RAISE

    confirm = mf.String(required=True)


# -- shared steps -----------------------------------------------------------------------------------


def _role(oid: str, permission: str | None) -> tuple[str, Role]:
    uid = login_session.login_required()
    return uid, org_policy.require(web.store(), oid, uid, permission)


def _administer(oid: str) -> tuple[str, Role]:
    uid, role = _role(oid, None)
    if not role.administers:
        raise Forbidden("only the organization's owner, admins and sub-admins may open this page")
    return uid, role


def _page(template: str, status: int = 200, **context: Any) -> Response:
    html = render_template(template, **context)
    return no_store(Response(html, status=status, mimetype="text/html"))


def _org(oid: str) -> dict[str, str]:
    return org_admin.org_record(web.store(), oid)


def _names(uids: list[str]) -> dict[str, str]:
    """Nicknames for display (the console is the org's own view of its members)."""
    users = directory.get_users(web.store(), uids)
    return {uid: (users.get(uid, {}).get("nickname") or uid) for uid in uids}


def _described(description: dict[str, str]) -> str:
    """A catalog description in the page's language."""
    return description.get(i18n.language()) or description["en"]


def _scope_rows(scopes: list[str]) -> list[dict[str, Any]]:
    catalog = web.catalog()
    return [
        {
            "name": s,
            "description": _described(catalog.scopes[s].description) if s in catalog.scopes else s,
            "fields": org_admin.field_rows(catalog, [s], i18n.language()),
        }
        for s in scopes
    ]


def _install(oid: str, uid: str, client_id: str, scopes: list[str] | None) -> dict[str, Any]:
    if org_admin.center_app(web.store(), client_id)["status"] != "active":
        raise Conflict("this app is suspended by the operator and cannot be added")
    record = inst_svc.install(web.store(), client_id, oid, scopes, uid)
    org_admin.audit(
        web.store(), oid, uid, "installation.installed", {"app": client_id, "scopes": record["scopes"]}
    )
    return record


def _change(oid: str, uid: str, client_id: str, action: str) -> dict[str, Any] | None:
    store = web.store()
    before = inst_svc.require_installation(store, client_id, oid)
    if action == "remove":
        inst_svc.remove(store, client_id, oid)
        record = None
    elif action == "disable":
        record = inst_svc.disable(store, client_id, oid)
    else:
        record = inst_svc.enable(store, client_id, oid)
    if record is None or record["enabled"] != before["enabled"]:  # a no-op switch is not an action
        org_admin.audit(store, oid, uid, f"installation.{action}d", {"app": client_id})
    return record


def _decide(oid: str, uid: str, request_id: str, approve: bool, reason: str, scopes: list[str] | None) -> Any:
    store = web.store()
    record = org_admin.decide_request(store, oid, request_id, uid, approve, reason, scopes)
    details = {"request": request_id, "app": record["client_id"], "requester": record["requester"]}
    if reason:
        details["reason"] = reason
    org_admin.audit(store, oid, uid, "request.approved" if approve else "request.denied", details)
    return record


def _appoint(oid: str, uid: str, target: str, permissions: list[str]) -> dict[str, Any]:
    record = org_admin.set_sub_admin(web.store(), oid, target, permissions)
    org_admin.audit(
        web.store(), oid, uid, "sub_admin.appointed", {"user": target, "permissions": permissions}
    )
    return record


def _dismiss(oid: str, uid: str, target: str) -> dict[str, Any]:
    record = org_admin.remove_sub_admin(web.store(), oid, target)
    org_admin.audit(web.store(), oid, uid, "sub_admin.removed", {"user": target})
    return record


def _disband(oid: str, confirm: str) -> list[str]:
    org = _org(oid)
    if confirm != org.get("name"):
        raise ValidationFailed(
            "some fields are invalid", fields={"confirm": ["type the organization's name exactly to confirm"]}
        )
    return org_admin.disband(web.store(), oid)


def _center_rows(oid: str) -> list[dict[str, Any]]:
    store = web.store()
    installed = inst_svc.installed_client_ids(store, oid)
    return [
        {**apps_svc.public_view(a), "installed": a["client_id"] in installed}
        for a in org_admin.app_center(store)
    ]


def _fail(exc: ValidationFailed | Conflict, back: str) -> Any:
    """A form problem on a page: say which field and why, then send the person back (303)."""
    fields = getattr(exc, "fields", None) or {}
    detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items()) or exc.detail
    flash(detail, "error")
    return redirect(back, code=303)


# -- home -------------------------------------------------------------------------------------------


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
    names = {a["client_id"]: a["name"] for a in apps_svc.list_apps(store) if a["kind"] == "org_app"}
    pending = [r for r in org_admin.list_requests(store, oid) if r["status"] == "pending"]
    return _page(
        "admin/overview.html",
        org=_org(oid),
        role=role,
        installs=installs,
        names=names,
        members=org_admin.member_count(store, oid),
        pending=len(pending),
        may=_may(role),
        disclosures=consoles.org_disclosures(oid),
    )


def _may(role: Role) -> dict[str, bool]:
    return {
        p.replace(".", "_"): org_policy.allows(role, p)
        for p in (APPS_MANAGE, ADMINS_MANAGE, AUDIT_READ, ORG_DISBAND)
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
    flowing = org_admin.field_rows(web.catalog(), inst["scopes"], i18n.language()) if inst else []
    return _page(
        "admin/app.html",
        org=_org(oid),
        app=record,
        inst=inst,
        flowing=flowing,
        scope_rows=_scope_rows(record["scopes"]),
        members=org_admin.member_count(store, oid),
    )


@bp.get("/admin/orgs/<oid>/apps/<client_id>/install")
def install_form(oid: str, client_id: str) -> Any:
    _role(oid, APPS_MANAGE)
    record = org_admin.center_app(web.store(), client_id)
    return _page(
        "admin/install.html", org=_org(oid), app=record, scope_rows=_scope_rows(record["scopes"]), errors={}
    )


@bp.post("/admin/orgs/<oid>/apps/<client_id>/install")
def install_page(oid: str, client_id: str) -> Any:
    uid, _ = _role(oid, APPS_MANAGE)
    record = org_admin.center_app(web.store(), client_id)
    try:
        _install(oid, uid, client_id, request.form.getlist("scopes"))
    except ValidationFailed as exc:
        return _page(
            "admin/install.html",
            400,
            org=_org(oid),
            app=record,
            scope_rows=_scope_rows(record["scopes"]),
            errors=exc.fields or {},
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
            row["description"] = _described(web.catalog().fields[row["name"]].description)
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
    scopes = request.form.getlist("scopes") if decision == "approve" else None
    try:
        _decide(oid, uid, request_id, decision == "approve", request.form.get("reason", ""), scopes or None)
    except (ValidationFailed, Conflict) as exc:
        return _fail(exc, f"/admin/orgs/{oid}/requests")
    flash(gettext("Approved: the app is added.") if decision == "approve" else gettext("Denied."), "success")
    return redirect(f"/admin/orgs/{oid}/requests", code=303)


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


@bp.get("/admin/orgs/<oid>/audit")
def audit_page(oid: str) -> Any:
    _role(oid, AUDIT_READ)
    rows = org_admin.audit_trail(web.store(), oid)
    return _page("admin/audit.html", org=_org(oid), rows=rows, names=_names(sorted({r["who"] for r in rows})))


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
    _role(oid, ORG_DISBAND)
    org = _org(oid)
    try:
        _disband(oid, request.form.get("confirm", ""))
    except ValidationFailed as exc:
        store = web.store()
        return _page(
            "admin/disband.html",
            400,
            org=org,
            members=org_admin.member_count(store, oid),
            installs=inst_svc.list_org_installations(store, oid),
            error=(exc.fields or {}).get("confirm", [exc.detail])[0],
        )
    flash(gettext("The organization %(org)s was disbanded.", org=org.get("name", oid)), "success")
    return redirect("/console", code=303)


# -- JSON API ---------------------------------------------------------------------------------------

_MEMBER = {404: "Not a member of this organization (its existence is private)"}
_MANAGE = {403: "A member without the permission this needs", **_MEMBER}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """``body`` for ``@documented`` to dump, never cached."""
    return body, status, {**NO_STORE, **(headers or {})}


@bp.get("/admin/v1/orgs/<oid>")
@documented(rs.AdminOrgSchema, errors=_MEMBER, summary="The organization and your role in it")
def api_org(oid: str) -> Reply:
    _, role = _role(oid, None)
    org = _org(oid)
    return _json(
        {
            "org_id": oid,
            "name": org.get("name", ""),
            "role": role.role,
            "permissions": list(role.permissions),
            "members": org_admin.member_count(web.store(), oid),
        }
    )


@bp.get("/admin/v1/orgs/<oid>/app-center")
@documented(rs.AppCenterSchema, errors=_MEMBER, summary="The App Center: apps the organization may add")
def api_app_center(oid: str) -> Reply:
    _role(oid, None)
    return _json({"apps": _center_rows(oid)})


@bp.get("/admin/v1/orgs/<oid>/installations")
@documented(rs.InstallationListSchema, errors=_MANAGE, summary="The organization's apps")
def api_installations(oid: str) -> Reply:
    _role(oid, APPS_MANAGE)
    records = inst_svc.list_org_installations(web.store(), oid)
    return _json({"installations": [inst_svc.public_view(r) for r in records]})


@bp.post("/admin/v1/orgs/<oid>/installations")
@documented(
    rs.InstallationSchema,
    status=201,
    location=True,
    body=InstallSchema,
    errors={**_MANAGE, 404: "Not a member, or no such App Center app", 409: "Already added, or suspended"},
    summary="Add an App Center app with the scopes you choose (default: all it requests)",
)
def api_install(oid: str) -> Reply:
    uid, _ = _role(oid, APPS_MANAGE)
    data = consoles.load(InstallSchema(), consoles.json_payload())
    record = _install(oid, uid, data["client_id"], data.get("scopes"))
    location = f"/admin/v1/orgs/{oid}/installations/{data['client_id']}"
    return _json(inst_svc.public_view(record), 201, {"Location": location})


@bp.get("/admin/v1/orgs/<oid>/installations/<client_id>")
@documented(
    rs.InstallationDetailSchema,
    errors={**_MANAGE, 404: "Not a member, or the app is not added"},
    summary="One added app and the member fields flowing to it",
)
def api_installation(oid: str, client_id: str) -> Reply:
    _role(oid, APPS_MANAGE)
    record = inst_svc.require_installation(web.store(), client_id, oid)
    fields = org_admin.field_rows(web.catalog(), record["scopes"])
    return _json({**inst_svc.public_view(record), "fields": [f["name"] for f in fields]})


@bp.get("/admin/v1/orgs/<oid>/installations/<client_id>/impact")
@documented(
    rs.ImpactSchema,
    query=rs.ImpactQuery,
    errors={**_MANAGE, 404: "Not a member, or the app is not added"},
    summary="What disable, enable or remove would change (members, fields, tokens)",
)
def api_impact(oid: str, client_id: str) -> Reply:
    _role(oid, APPS_MANAGE)
    action = request.args.get("action", "")
    if action not in ACTIONS:
        raise ValidationFailed(
            "some fields are invalid", fields={"action": [f"must be one of {', '.join(ACTIONS)}"]}
        )
    found = org_admin.impact(web.store(), web.catalog(), oid, client_id, action)
    found.pop("field_rows")
    return _json(found)


@bp.patch("/admin/v1/orgs/<oid>/installations/<client_id>")
@documented(
    rs.InstallationSchema,
    body=EnabledSchema,
    errors={**_MANAGE, 404: "Not a member, or the app is not added"},
    summary="Switch an added app off or on (effective on its next data request)",
)
def api_set_enabled(oid: str, client_id: str) -> Reply:
    uid, _ = _role(oid, APPS_MANAGE)
    data = consoles.load(EnabledSchema(), consoles.json_payload())
    inst_svc.require_installation(web.store(), client_id, oid)
    record = _change(oid, uid, client_id, "enable" if data["enabled"] else "disable")
    return _json(inst_svc.public_view(record or {}))


@bp.delete("/admin/v1/orgs/<oid>/installations/<client_id>")
@documented(
    status=204,
    errors={**_MANAGE, 404: "Not a member, or the app is not added"},
    summary="Remove an app: its tokens are revoked at once",
)
def api_remove(oid: str, client_id: str) -> Reply:
    uid, _ = _role(oid, APPS_MANAGE)
    _change(oid, uid, client_id, "remove")
    return Response(status=204)


@bp.get("/admin/v1/orgs/<oid>/requests")
@documented(
    rs.AppRequestListSchema,
    query=rs.RequestListQuery,
    errors=_MANAGE,
    summary="Members' app requests, newest first",
)
def api_requests(oid: str) -> Reply:
    _role(oid, APPS_MANAGE)
    status = request.args.get("status")
    rows = org_admin.list_requests(web.store(), oid)
    if status:
        rows = [r for r in rows if r["status"] == status]
    return _json({"requests": rows})


@bp.get("/admin/v1/orgs/<oid>/requests/mine")
@documented(rs.AppRequestListSchema, errors=_MEMBER, summary="Your own app requests")
def api_my_requests(oid: str) -> Reply:
    uid, _ = _role(oid, None)
    return _json({"requests": org_admin.list_requests(web.store(), oid, uid)})


@bp.post("/admin/v1/orgs/<oid>/requests")
@documented(
    rs.AppRequestSchema,
    status=201,
    body=RequestSchema,
    errors={**_MEMBER, 404: "Not a member, or no such App Center app", 409: "Already added or requested"},
    summary="Ask the admins to add an App Center app",
)
def api_create_request(oid: str) -> Reply:
    uid, _ = _role(oid, None)
    data = consoles.load(RequestSchema(), consoles.json_payload())
    record = org_admin.request_app(web.store(), oid, uid, data["client_id"], data["reason"])
    return _json(record, 201)


@bp.post("/admin/v1/orgs/<oid>/requests/<request_id>/decision")
@documented(
    rs.AppRequestSchema,
    body=DecisionSchema,
    errors={**_MANAGE, 404: "Not a member, or no such request", 409: "Already decided"},
    summary="Approve (adds the app) or deny (with a reason) a member's request",
)
def api_decide(oid: str, request_id: str) -> Reply:
    uid, _ = _role(oid, APPS_MANAGE)
    data = consoles.load(DecisionSchema(), consoles.json_payload())
    record = _decide(oid, uid, request_id, data["decision"] == "approve", data["reason"], data.get("scopes"))
    return _json(record)


@bp.get("/admin/v1/orgs/<oid>/roles")
@documented(rs.MemberRoleListSchema, errors=_MANAGE, summary="Every member and their role")
def api_roles(oid: str) -> Reply:
    _role(oid, ADMINS_MANAGE)
    return _json({"roles": org_admin.roles(web.store(), oid)})


@bp.put("/admin/v1/orgs/<oid>/roles/<target>")
@documented(
    rs.MemberRoleSchema,
    body=SubAdminSchema(exclude=("user_id",)),
    errors={**_MANAGE, 409: "Owners and admins cannot be made sub-admins"},
    summary="Appoint a member sub-admin with permissions (or change them)",
)
def api_appoint(oid: str, target: str) -> Reply:
    uid, _ = _role(oid, ADMINS_MANAGE)
    payload = {**consoles.json_payload(), "user_id": target}
    data = consoles.load(SubAdminSchema(), payload)
    return _json(_appoint(oid, uid, data["user_id"], data["permissions"]))


@bp.delete("/admin/v1/orgs/<oid>/roles/<target>")
@documented(
    status=204,
    errors={**_MANAGE, 404: "Not a member, or that person is not a sub-admin"},
    summary="Make a sub-admin a plain member again",
)
def api_dismiss(oid: str, target: str) -> Reply:
    uid, _ = _role(oid, ADMINS_MANAGE)
    _dismiss(oid, uid, target)
    return Response(status=204)


@bp.get("/admin/v1/orgs/<oid>/disclosures")
@documented(
    rs.DisclosurePageSchema,
    media=LISTING,
    query=rs.DisclosureByPersonQuery,
    errors={403: "Not an owner, admin or sub-admin", **_MEMBER},
)
def api_disclosures(oid: str) -> Reply:
    """Records about the org's members made through the org's installations: filters (since,
    until, app, person), cursor pagination, ``?format=ndjson|csv`` export."""
    from broker.web.ledger.api import listing

    _administer(oid)
    return listing("org", oid, person_filter=True)


@bp.get("/admin/v1/orgs/<oid>/audit")
@documented(rs.AuditTrailSchema, errors=_MANAGE, summary="The audit trail, newest first")
def api_audit(oid: str) -> Reply:
    _role(oid, AUDIT_READ)
    return _json({"audit": org_admin.audit_trail(web.store(), oid)})


@bp.post("/admin/v1/orgs/<oid>/disband")
@documented(
    rs.DisbandedSchema,
    body=DisbandSchema,
    errors=_MANAGE,
    summary="Disband the organization: every app removed, its data deleted",
)
def api_disband(oid: str) -> Reply:
    _role(oid, ORG_DISBAND)
    data = consoles.load(DisbandSchema(), consoles.json_payload())
    removed = _disband(oid, data["confirm"])
    return _json({"org_id": oid, "disbanded": True, "removed_installations": removed})
