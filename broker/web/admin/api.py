"""The admin console's JSON API (``/admin/v1/...``), session-authenticated with CSRF."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from broker.consent import installations as inst_svc
from broker.consent import org_admin
from broker.consent.org_policy import (
    ADMINS_MANAGE,
    APPS_MANAGE,
    AUDIT_READ,
    DISCLOSURES_READ,
    MEMBERS_MANAGE,
    ORG_DISBAND,
)
from broker.errors import ValidationFailed
from broker.web.admin.console import (
    ACTIONS,
    AddMemberSchema,
    DecisionSchema,
    DisbandSchema,
    InstallationChangeSchema,
    InstallSchema,
    PolicySchema,
    RequestSchema,
    SubAdminSchema,
    _add_member,
    _appoint,
    _center_rows,
    _change,
    _decide,
    _disband,
    _dismiss,
    _install,
    _member_rows,
    _org,
    _remove_member,
    _role,
    _set_choice,
    _set_policy,
    bp,
)
from broker.web.ledger.api import LISTING
from broker.web.shared import consoles
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import Reply, documented, links_to
from broker.web.shared.responses import NO_STORE

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
    return _json({"installations": [inst_svc.public_view(r, web.catalog()) for r in records]})


@bp.post("/admin/v1/orgs/<oid>/installations")
@documented(
    rs.InstallationSchema,
    status=201,
    location=True,
    links=links_to(
        "/admin/v1/orgs/{oid}/installations/{client_id}",
        {"oid": "$request.path.oid", "client_id": "$response.body#/client_id"},
        GetInstallation="get",
        UpdateInstallation="patch",
        RemoveInstallation="delete",
    ),
    body=InstallSchema,
    errors={**_MANAGE, 404: "Not a member, or no such App Center app", 409: "Already added, or suspended"},
    summary="Add an App Center app with the scopes you choose (default: all it requests)",
)
def api_install(oid: str) -> Reply:
    uid, _ = _role(oid, APPS_MANAGE)
    data = consoles.load(InstallSchema(), consoles.json_payload())
    record = _install(
        oid, uid, data["client_id"], data.get("scopes"), data.get("departments"), data.get("fields")
    )
    location = f"/admin/v1/orgs/{oid}/installations/{data['client_id']}"
    return _json(inst_svc.public_view(record, web.catalog()), 201, {"Location": location})


@bp.get("/admin/v1/orgs/<oid>/installations/<client_id>")
@documented(
    rs.InstallationDetailSchema,
    errors={**_MANAGE, 404: "Not a member, or the app is not added"},
    summary="One added app and the member fields flowing to it",
)
def api_installation(oid: str, client_id: str) -> Reply:
    _role(oid, APPS_MANAGE)
    record = inst_svc.require_installation(web.store(), client_id, oid)
    return _json(inst_svc.public_view(record, web.catalog()))


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
    body=InstallationChangeSchema,
    errors={**_MANAGE, 404: "Not a member, or the app is not added"},
    summary="Switch an added app off or on, or change its scopes and member fields (effective on its "
    "next data request)",
)
def api_set_enabled(oid: str, client_id: str) -> Reply:
    uid, _ = _role(oid, APPS_MANAGE)
    data = consoles.load(InstallationChangeSchema(), consoles.json_payload())
    inst_svc.require_installation(web.store(), client_id, oid)
    record: dict[str, Any] | None
    if "enabled" in data:
        record = _change(oid, uid, client_id, "enable" if data["enabled"] else "disable")
    else:
        record = _set_choice(oid, uid, client_id, data.get("scopes"), data.get("fields"))
    return _json(inst_svc.public_view(record or {}, web.catalog()))


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
    approve = data["decision"] == "approve"
    record = _decide(oid, uid, request_id, approve, data["reason"], data.get("scopes"), data.get("fields"))
    return _json(record)


@bp.get("/admin/v1/orgs/<oid>/installations/<client_id>/explain")
@documented(rs.ExplanationSchema, errors=_MANAGE, summary="What the app receives about each member, and why")
def api_explain(oid: str, client_id: str) -> Reply:
    from broker.gate import explain

    _role(oid, APPS_MANAGE)
    org_admin.center_app(web.store(), client_id)
    rows = explain.explain_installation(web.store(), web.catalog(), client_id, oid)
    return _json({"client_id": client_id, "org_id": oid, "fields": [r.as_json() for r in rows]})


@bp.get("/admin/v1/orgs/<oid>/policy")
@documented(
    rs.AppPolicySchema, errors=_MANAGE, summary="Whether members may add mini-programs; allow and block lists"
)
def api_policy(oid: str) -> Reply:
    _role(oid, APPS_MANAGE)
    return _json({**org_admin.app_policy(web.store(), oid), "grants_ended": 0})


@bp.put("/admin/v1/orgs/<oid>/policy")
@documented(
    rs.AppPolicySchema,
    body=PolicySchema(),
    errors=_MANAGE,
    summary="Change the app policy (apps.manage); members' grants it now refuses end at once (grant.revoked)",
)
def api_set_policy(oid: str) -> Reply:
    uid, _ = _role(oid, APPS_MANAGE)
    data = consoles.load(PolicySchema(), consoles.json_payload())
    return _json(_set_policy(oid, uid, data))


@bp.get("/admin/v1/orgs/<oid>/members")
@documented(
    rs.OrgMemberListSchema, errors=_MANAGE, summary="Every member by name, in join order (members.manage)"
)
def api_members(oid: str) -> Reply:
    _role(oid, MEMBERS_MANAGE)
    return _json({"members": _member_rows(oid)})


@bp.post("/admin/v1/orgs/<oid>/members")
@documented(
    rs.MemberAddedSchema,
    status=201,
    body=AddMemberSchema(),
    errors={**_MANAGE, 409: "Already a member"},
    summary="Add an existing person by username as a member (members.manage); apps get member.added",
)
def api_add_member(oid: str) -> Reply:
    uid, _ = _role(oid, MEMBERS_MANAGE)
    data = consoles.load(AddMemberSchema(), consoles.json_payload())
    return _json(_add_member(oid, uid, data["username"]), 201)


@bp.delete("/admin/v1/orgs/<oid>/members/<target>")
@documented(
    status=204,
    errors={
        **_MANAGE,
        404: "Not a member",
        409: "Owners and admins cannot be removed here; a sub-admin only by an owner or admin",
    },
    summary="Remove a member (members.manage); the org's apps get member.removed",
)
def api_remove_member(oid: str, target: str) -> Reply:
    uid, role = _role(oid, MEMBERS_MANAGE)
    _remove_member(oid, uid, role, target)
    return Response(status=204)


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
    errors={403: "Needs disclosures.read (owners and admins hold it)", **_MEMBER},
)
def api_disclosures(oid: str) -> Reply:
    """Records about the org's members made through the org's installations: filters (since,
    until, app, person), cursor pagination, ``?format=ndjson|csv`` export."""
    from broker.web.ledger.api import listing

    _role(oid, DISCLOSURES_READ)
    return listing("org", oid, person_filter=True)


@bp.get("/admin/v1/orgs/<oid>/audit")
@documented(rs.AuditPageSchema, query=rs.AuditQuery, errors=_MANAGE, summary="The audit trail, newest first")
def api_audit(oid: str) -> Reply:
    """Filters ``what`` (an action) and ``who`` (a user id, or ``platform``); cursor paging from
    ``next_cursor``. A filtered page reads at most the next 1000 entries, so it may hold fewer
    than ``limit`` entries (even none) and still have a ``next_cursor``."""
    _role(oid, AUDIT_READ)
    query = consoles.load(rs.AuditQuery(), request.args.to_dict())
    page = org_admin.audit_page(
        web.store(),
        oid,
        limit=query["limit"],
        cursor=query.get("cursor") or None,
        what=query.get("what") or None,
        who=query.get("who") or None,
    )
    return _json({"audit": page.entries, "next_cursor": page.next_cursor})


@bp.post("/admin/v1/orgs/<oid>/disband")
@documented(
    rs.DisbandedSchema,
    body=DisbandSchema,
    errors={
        **_MANAGE,
        403: "Not allowed, or re-authentication required (send your password)",
        429: "Too many failed attempts",
    },
    summary="Disband the organization: every app removed, its data deleted (needs your password "
    "unless you signed in within BROKER_REAUTH_SECONDS)",
)
def api_disband(oid: str) -> Reply:
    uid, _ = _role(oid, ORG_DISBAND)
    data = consoles.load(DisbandSchema(), consoles.json_payload())
    removed = _disband(oid, data["confirm"], uid, data.get("password") or None)
    return _json({"org_id": oid, "disbanded": True, "removed_installations": removed})
