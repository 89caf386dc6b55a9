"""The admin console's blueprint and the steps its pages and its API share.

The admin console: an organization's App Center apps, member requests, sub-admins, audit, disband.

Pages live under ``/admin/orgs/<org_id>/``; the same operations as JSON under
``/admin/v1/orgs/<org_id>/``, authenticated by the session cookie with CSRF on (token from
``GET /admin/v1/csrf-token``, sent in ``X-CSRFToken``). Who may do what is
``broker.consent.org_policy``: a non-member gets 404 (an org's existence is private), a member
without the permission 403. Every change takes effect on the next data request (the gate re-reads
the installation) and is written to the org's audit trail after it succeeds.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template
from marshmallow import RAISE, Schema, ValidationError, validate, validates_schema
from marshmallow import fields as mf

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.consent import org_admin, org_policy
from broker.consent.org_policy import Role
from broker.core import ids
from broker.directory import service as directory
from broker.errors import Conflict, Forbidden, NotFound, ValidationFailed
from broker.web.interactions import i18n, reauth
from broker.web.interactions import session as login_session
from broker.web.shared import consoles
from broker.web.shared import context as web
from broker.web.shared.responses import no_store
from broker.web.shared.schemas import member_field_choice

bp = Blueprint("admin", __name__)

API = ("/admin/v1/",)
consoles.install_handlers(bp, API)

ACTIONS = ("disable", "enable", "remove")
_SCOPES = mf.List(mf.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(min=1, max=50))
_FIELDS = member_field_choice()
_CLIENT_ID = validate.Regexp(apps_svc.CLIENT_ID_RE.pattern, error="not a client id")
_USER_ID = validate.Regexp(ids.USER_ID, error="not a user id")


class InstallSchema(Schema):
    class Meta:
        unknown = RAISE

    client_id = mf.String(required=True, validate=_CLIENT_ID)
    scopes = _SCOPES
    fields_ = _FIELDS
    departments = mf.List(
        mf.String(validate=validate.Regexp(ids.DEPARTMENT_ID, error="not a department id")),
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={
            "description": "cover only these departments and their sub-departments; null: the whole org"
        },
    )


class InstallationChangeSchema(Schema):
    """Either ``enabled`` (switch off or on) or a new choice: ``scopes`` and/or ``fields``."""

    class Meta:
        unknown = RAISE

    enabled = mf.Boolean(truthy={True}, falsy={False})
    scopes = _SCOPES
    fields_ = _FIELDS

    @validates_schema
    def _one_change(self, data: dict[str, Any], **_: Any) -> None:
        choice = "scopes" in data or "fields" in data
        if ("enabled" in data) == choice:
            raise ValidationError("send either enabled, or scopes and/or fields")


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
    fields_ = _FIELDS


class SubAdminSchema(Schema):
    class Meta:
        unknown = RAISE

    user_id = mf.String(required=True, validate=_USER_ID)
    permissions = mf.List(mf.String(validate=validate.OneOf(org_policy.GRANTABLE)), required=True)


class AddMemberSchema(Schema):
    class Meta:
        unknown = RAISE

    username = mf.String(required=True, validate=validate.Length(min=1, max=64))


class PolicySchema(Schema):
    class Meta:
        unknown = RAISE

    allow_member_mini_programs = mf.Boolean(truthy={True}, falsy={False})
    allowed_apps = mf.List(mf.String(validate=_CLIENT_ID), validate=validate.Length(max=500))
    blocked_apps = mf.List(mf.String(validate=_CLIENT_ID), validate=validate.Length(max=500))


class DisbandSchema(Schema):
    class Meta:
        unknown = RAISE

    confirm = mf.String(required=True)
    password = mf.String(
        metadata={"description": "your password; may be left out within BROKER_REAUTH_SECONDS of signing in"}
    )


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
            # ticked only on purpose: never implied by adding the app (scopes/organization.toml)
            "separate": s in catalog.scopes and catalog.scopes[s].separate_consent,
        }
        for s in scopes
    ]


def _install(
    oid: str,
    uid: str,
    client_id: str,
    scopes: list[str] | None,
    departments: list[str] | None = None,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    if org_admin.center_app(web.store(), client_id)["status"] != "active":
        raise Conflict("this app is suspended by the operator and cannot be added")
    catalog = web.catalog()
    record = inst_svc.install(web.store(), client_id, oid, scopes, uid, departments, fields, catalog)
    details: dict[str, Any] = {
        "app": client_id,
        "scopes": record["scopes"],
        "fields": inst_svc.released(catalog, record),
    }
    if departments is not None:
        details["departments"] = departments
    org_admin.audit(web.store(), oid, uid, "installation.installed", details)
    return record


def _change(oid: str, uid: str, client_id: str, action: str) -> dict[str, Any] | None:
    store = web.store()
    before = inst_svc.require_installation(store, client_id, oid)
    if action == "remove":
        inst_svc.remove(store, client_id, oid, uid)
        record = None
    elif action == "disable":
        record = inst_svc.disable(store, client_id, oid, uid)
    else:
        record = inst_svc.enable(store, client_id, oid, uid)
    if record is None or record["enabled"] != before["enabled"]:  # a no-op switch is not an action
        org_admin.audit(store, oid, uid, f"installation.{action}d", {"app": client_id})
    return record


def _form_choice(form: Any) -> tuple[list[str], list[str] | None]:
    """The scopes and member fields an install or change form chose. A form that shows the field
    checkboxes says so (``field_choice``); the ticked fields of a scope left unticked are dropped
    (the scope governs), so unticking a scope never leaves an error behind."""
    scopes = form.getlist("scopes")
    if "field_choice" not in form:
        return scopes, None
    reachable = web.catalog().fields_of(scopes)
    return scopes, [f for f in form.getlist("fields") if f in reachable]


def _set_choice(
    oid: str, uid: str, client_id: str, scopes: list[str] | None, fields: list[str] | None
) -> dict[str, Any]:
    """Change what an added app receives (scopes and/or member fields), with its audit entry."""
    return org_admin.change_choice(web.store(), web.catalog(), oid, client_id, scopes, fields, uid)


def _decide(
    oid: str,
    uid: str,
    request_id: str,
    approve: bool,
    reason: str,
    scopes: list[str] | None,
    fields: list[str] | None = None,
) -> Any:
    store = web.store()
    record = org_admin.decide_request(
        store,
        oid,
        request_id,
        uid,
        approve,
        reason,
        scopes,
        fields,
        web.catalog() if fields is not None else None,
    )
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


def _add_member(oid: str, uid: str, username: str) -> dict[str, Any]:
    return org_admin.add_member(web.store(), web.settings(), oid, uid, username)


def _remove_member(oid: str, uid: str, role: Role, target: str) -> None:
    org_admin.remove_member(web.store(), web.settings().pairwise_key, oid, uid, role, target)


def _member_rows(oid: str) -> list[dict[str, Any]]:
    """Members with their names (the console is the org's own view of its members)."""
    rows = org_admin.members(web.store(), oid)
    users = directory.get_users(web.store(), [r["user_id"] for r in rows])
    for r in rows:
        user = users.get(r["user_id"], {})
        r["nickname"] = user.get("nickname") or ""
        r["username"] = user.get("username") or ""
    return rows


def _set_policy(oid: str, uid: str, changes: dict[str, Any]) -> dict[str, Any]:
    return org_admin.set_app_policy(web.store(), web.settings(), oid, uid, changes)


def _policy_rows(oid: str) -> list[dict[str, Any]]:
    """Every active app the policy can name, with its current choice (default, allowed, blocked)."""
    policy = org_admin.app_policy(web.store(), oid)
    rows = []
    for a in apps_svc.list_apps(web.store()):
        if a["status"] != "active" or (a["kind"] == "org_app" and not apps_svc.listed(a)):
            continue
        choice = "default"
        if a["client_id"] in policy["blocked_apps"]:
            choice = "blocked"
        elif a["client_id"] in policy["allowed_apps"]:
            choice = "allowed"
        rows.append({"client_id": a["client_id"], "name": a["name"], "kind": a["kind"], "choice": choice})
    return rows


def _disband(oid: str, confirm: str, uid: str, password: str | None) -> list[str]:
    org = _org(oid)
    if confirm != org.get("name"):
        raise ValidationFailed(
            "some fields are invalid", fields={"confirm": ["type the organization's name exactly to confirm"]}
        )
    reauth.require(uid, password)  # disbanding cannot be undone: the password again (or a fresh sign-in)
    return org_admin.disband(web.store(), oid)


def _center_rows(oid: str) -> list[dict[str, Any]]:
    store = web.store()
    installed = inst_svc.installed_client_ids(store, oid)
    return [
        {
            **apps_svc.public_view(a),
            "developer_name": a["developer_name"],
            "installed": a["client_id"] in installed,
        }
        for a in org_admin.app_center(store)
        if not org_policy.blocked_in_org(store, oid, a["client_id"])
    ]


def _fail(exc: ValidationFailed | Conflict | NotFound, back: str) -> Any:
    """A form problem on a page: say which field and why, then send the person back (303)."""
    fields = getattr(exc, "fields", None) or {}
    detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items()) or exc.detail
    flash(detail, "error")
    return redirect(back, code=303)


# -- home -------------------------------------------------------------------------------------------
