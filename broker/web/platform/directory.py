"""Platform API: directory (users, organizations, memberships, bulk import).

The platform pushes its people and organizations here. Every body is validated completely before
anything is written; a 400 lists every bad field (for imports: every bad line and field).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Response, request

from broker.consent import coverage, org_admin
from broker.directory import departments
from broker.directory import importer as dio
from broker.directory import service as directory
from broker.errors import NotFound, UnsupportedMediaType, ValidationFailed
from broker.web.interactions import logout
from broker.web.platform import schemas as ps
from broker.web.platform.auth import require_platform_key
from broker.web.platform.blueprint import bp
from broker.web.shared import bounded_json
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import Lines, Reply, documented, links_to

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-seq")
_USER = {404: "No such (active) user"}
_ORG = {404: "No such organization"}
PLATFORM = "platform"  # the actor named in an org's audit trail for changes made through this API


def _created(body: dict[str, Any], location: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    return body, 201, {"Location": location}


def _no_content() -> Response:
    return Response(status=204)


def _user_or_404(uid: str) -> dict[str, Any]:
    user = directory.get_user(web.store(), uid)
    if user is None or user.get("status") != "active":
        raise NotFound(f"no user {uid}")
    return user


def _org_or_404(oid: str) -> dict[str, Any]:
    org = directory.get_org(web.store(), oid)
    if org is None:
        raise NotFound(f"no organization {oid}")
    return org


# --- users -----------------------------------------------------------------------------------


@bp.post("/users")
@documented(
    rs.UserSchema,
    status=201,
    location=True,
    links={
        **links_to(
            "/internal/v1/users/{uid}",
            {"uid": "$response.body#/id"},
            GetUser="get",
            UpdateUser="patch",
            DeleteUser="delete",
        ),
        **links_to("/internal/v1/users/{uid}/orgs", {"uid": "$response.body#/id"}, GetUserOrgs="get"),
    },
    body=dio.UserCreateSchema,
    errors={409: "The username (or the given id) is taken"},
    summary="Create a user",
)
@require_platform_key
def create_user() -> Reply:
    data = web.json_body(dio.UserCreateSchema())
    user = directory.create_user(web.store(), data)
    return _created(user, f"/internal/v1/users/{user['id']}")


@bp.get("/users/<uid>")
@documented(rs.UserSchema, errors=_USER, summary="One user")
@require_platform_key
def get_user(uid: str) -> Reply:
    return _user_or_404(uid)


@bp.get("/users/by-username/<username>")
@documented(rs.UserSchema, errors=_USER, summary="One user by username")
@require_platform_key
def get_user_by_username(username: str) -> Reply:
    user = directory.find_user_by_username(web.store(), username)
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


@bp.patch("/users/<uid>")
@documented(
    rs.UserSchema,
    body=dio.UserUpdateSchema,
    errors={**_USER, 409: "The username is taken"},
    summary="Change a user's profile, username or password",
)
@require_platform_key
def update_user(uid: str) -> Reply:
    _user_or_404(uid)
    changes = web.json_body(dio.UserUpdateSchema())
    ended: list[Any] = []  # a password reset ends every session: the apps are told (back-channel logout)
    updated = directory.update_user(web.store(), uid, changes, ended=ended)
    logout.notify(ended)
    return updated


@bp.delete("/users/<uid>")
@documented(status=204, errors=_USER, summary="Delete a user: grants end, apps are told, data is erased")
@require_platform_key
def delete_user(uid: str) -> Reply:
    """The same account deletion as the privacy center: grants end, apps are told, data is erased."""
    from broker.consent.person import delete_account

    _user_or_404(uid)
    delete_account(web.store(), web.settings(), uid)
    return _no_content()


@bp.get("/users/<uid>/orgs")
@documented(rs.UserOrgsSchema, errors=_USER, summary="The organizations a user belongs to")
@require_platform_key
def user_orgs(uid: str) -> Reply:
    _user_or_404(uid)
    return {"orgs": directory.user_org_ids(web.store(), uid)}


# --- organizations ---------------------------------------------------------------------------


@bp.post("/orgs")
@documented(
    rs.OrgSchema,
    status=201,
    location=True,
    links={
        **links_to(
            "/internal/v1/orgs/{oid}",
            {"oid": "$response.body#/id"},
            GetOrg="get",
            UpdateOrg="patch",
            DeleteOrg="delete",
        ),
        **links_to("/internal/v1/orgs/{oid}/members", {"oid": "$response.body#/id"}, GetMembers="get"),
        **links_to(
            "/internal/v1/orgs/{org_id}/installations",
            {"org_id": "$response.body#/id"},
            GetInstallations="get",
        ),
    },
    body=dio.OrgCreateSchema,
    errors={409: "The given id is taken"},
    summary="Create an organization",
)
@require_platform_key
def create_org() -> Reply:
    data = web.json_body(dio.OrgCreateSchema())
    org = directory.create_org(web.store(), data)
    return _created(org, f"/internal/v1/orgs/{org['id']}")


@bp.get("/orgs/<oid>")
@documented(rs.OrgSchema, errors=_ORG, summary="One organization")
@require_platform_key
def get_org(oid: str) -> Reply:
    return _org_or_404(oid)


@bp.patch("/orgs/<oid>")
@documented(rs.OrgSchema, body=dio.OrgUpdateSchema, errors=_ORG, summary="Change an organization")
@require_platform_key
def update_org(oid: str) -> Reply:
    _org_or_404(oid)
    changes = web.json_body(dio.OrgUpdateSchema())
    policy = {
        k: changes.pop(k)
        for k in ("allow_member_mini_programs", "allowed_apps", "blocked_apps")
        if k in changes
    }
    if policy:  # first: it is validated (apps exist) before anything is written
        org_admin.set_app_policy(web.store(), web.settings(), oid, PLATFORM, policy)
    if changes:
        directory.update_org(web.store(), oid, changes)
    return _org_or_404(oid)


@bp.delete("/orgs/<oid>")
@documented(
    status=204,
    errors=_ORG,
    summary="Delete an organization: its installations (and their tokens), members and roles",
)
@require_platform_key
def delete_org(oid: str) -> Reply:
    """The same disbanding as the admin console's: installations are removed first (their tokens
    revoked, the apps told), so nothing of the organization outlives it, not even under its id."""
    from broker.consent.org_admin import disband

    _org_or_404(oid)
    disband(web.store(), oid)
    return _no_content()


# --- memberships -----------------------------------------------------------------------------


def _int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValidationFailed(
            f"{name} must be a whole number from {lo} to {hi}",
            fields={name: [f"expected a whole number from {lo} to {hi}"]},
        )
    return int(raw)


@bp.get("/orgs/<oid>/members")
@documented(
    rs.PlatformMemberPageSchema, query=rs.MemberListQuery, errors=_ORG, summary="Members in join order"
)
@require_platform_key
def list_members(oid: str) -> Reply:
    _org_or_404(oid)
    after = _int_arg("after", None, 0, 2**53)
    limit = _int_arg("limit", 100, 1, 1000)
    assert limit is not None
    store = web.store()
    page, cursor = directory.list_members(store, oid, after, limit)
    roles = directory.member_roles(store, oid, [uid for _, uid in page])
    members = [
        {"user_id": uid, "seq": seq, **(role or {})} for (seq, uid), role in zip(page, roles, strict=True)
    ]
    return {"members": members, "next_cursor": cursor}


@bp.get("/orgs/<oid>/members/<uid>")
@documented(
    rs.MembershipSchema, errors={404: "No such organization, or not a member"}, summary="One member's role"
)
@require_platform_key
def get_member(oid: str, uid: str) -> Reply:
    _org_or_404(oid)
    role = directory.member_role(web.store(), oid, uid)
    if role is None:
        raise NotFound(f"user {uid} is not a member of {oid}")
    return {"user_id": uid, "org_id": oid, **role}


@bp.put("/orgs/<oid>/members/<uid>")
@documented(
    rs.MembershipSchema,
    responses={201: ("Added as a new member", {"application/json": rs.MembershipSchema})},
    body=dio.RoleSchema,
    errors={404: "No such organization or user"},
    summary="Add a member with a role, or change a member's role (200)",
)
@require_platform_key
def put_member(oid: str, uid: str) -> Reply:
    _org_or_404(oid)
    data = web.json_body(dio.RoleSchema())
    _user_or_404(uid)
    store = web.store()
    before = directory.member_role(store, oid, uid)
    added = directory.add_member(store, oid, uid, data["role"], data.get("permissions", ()))
    role = directory.member_role(store, oid, uid)
    if added:
        org_admin.announce_member(store, web.settings().pairwise_key, oid, uid, "member.added")
        org_admin.enforce_app_policy(store, web.settings(), oid, [uid])
        org_admin.audit(store, oid, PLATFORM, "member.added", {"user": uid, **(role or {})})
    elif role != before:
        org_admin.audit(store, oid, PLATFORM, "role.changed", {"user": uid, **(role or {})})
    return {"user_id": uid, "org_id": oid, **(role or {})}, 201 if added else 200


@bp.delete("/orgs/<oid>/members/<uid>")
@documented(status=204, errors={404: "No such organization, or not a member"}, summary="Remove a member")
@require_platform_key
def delete_member(oid: str, uid: str) -> Reply:
    _org_or_404(oid)
    store = web.store()
    covered_by = directory.remove_member(store, oid, uid)
    org_admin.announce_member(store, web.settings().pairwise_key, oid, uid, "member.removed", covered_by)
    org_admin.audit(store, oid, PLATFORM, "member.removed", {"user": uid})
    return _no_content()


# --- departments -----------------------------------------------------------------------------

_DEPT = {404: "No such organization or department"}


@bp.get("/orgs/<oid>/departments")
@documented(ps.DepartmentListSchema, errors=_ORG, summary="The organization's departments, in tree order")
@require_platform_key
def list_departments(oid: str) -> Reply:
    _org_or_404(oid)
    return {"departments": departments.listing(web.store(), oid)}


@bp.post("/orgs/<oid>/departments")
@documented(
    ps.DepartmentSchema,
    status=201,
    location=True,
    links=links_to(
        "/internal/v1/orgs/{oid}/departments/{dep_id}",
        {"oid": "$request.path.oid", "dep_id": "$response.body#/id"},
        GetDepartment="get",
        UpdateDepartment="patch",
        DeleteDepartment="delete",
    ),
    body=dio.DepartmentCreateSchema,
    errors={**_ORG, 409: "The organization has too many departments"},
    summary="Create a department (at the top level or under a parent)",
)
@require_platform_key
def create_department(oid: str) -> Reply:
    _org_or_404(oid)
    data = web.json_body(dio.DepartmentCreateSchema())
    store = web.store()
    record = departments.create(store, oid, data["name"], data.get("parent"))
    org_admin.audit(
        store, oid, PLATFORM, "department.created", {"department": record["id"], "name": record["name"]}
    )
    return _created(record, f"/internal/v1/orgs/{oid}/departments/{record['id']}")


@bp.get("/orgs/<oid>/departments/<dep_id>")
@documented(ps.DepartmentDetailSchema, errors=_DEPT, summary="One department and its direct members")
@require_platform_key
def get_department(oid: str, dep_id: str) -> Reply:
    _org_or_404(oid)
    return departments.get(web.store(), oid, dep_id)


@bp.patch("/orgs/<oid>/departments/<dep_id>")
@documented(
    ps.DepartmentSchema,
    body=dio.DepartmentUpdateSchema,
    errors=_DEPT,
    summary="Rename a department or move it (a move under itself or its sub-departments is refused)",
)
@require_platform_key
def update_department(oid: str, dep_id: str) -> Reply:
    _org_or_404(oid)
    data = web.json_body(dio.DepartmentUpdateSchema())
    store = web.store()
    coverage.update_department(store, web.settings().pairwise_key, oid, dep_id, data)
    org_admin.audit(store, oid, PLATFORM, "department.changed", {"department": dep_id, **data})
    found = departments.get(store, oid, dep_id)
    return {k: found[k] for k in ("id", "name", "parent")}


@bp.delete("/orgs/<oid>/departments/<dep_id>")
@documented(
    status=204,
    errors={**_DEPT, 409: "The department has sub-departments"},
    summary="Delete a department without sub-departments; its members leave it",
)
@require_platform_key
def delete_department(oid: str, dep_id: str) -> Reply:
    _org_or_404(oid)
    store = web.store()
    coverage.delete_department(store, web.settings().pairwise_key, oid, dep_id)
    org_admin.audit(store, oid, PLATFORM, "department.deleted", {"department": dep_id})
    return _no_content()


@bp.get("/orgs/<oid>/members/<uid>/departments")
@documented(
    ps.MemberDepartmentsResultSchema,
    errors={404: "No such organization, or not a member"},
    summary="The departments a member is in",
)
@require_platform_key
def get_member_departments(oid: str, uid: str) -> Reply:
    _org_or_404(oid)
    store = web.store()
    if not directory.is_member(store, oid, uid):
        raise NotFound(f"user {uid} is not a member of {oid}")
    return {"user_id": uid, "org_id": oid, "departments": departments.member_departments(store, oid, uid)}


@bp.put("/orgs/<oid>/members/<uid>/departments")
@documented(
    ps.MemberDepartmentsResultSchema,
    body=dio.MemberDepartmentsSchema,
    errors={404: "No such organization, or not a member"},
    summary="Put a member in departments (replacing the previous ones; [] for none)",
)
@require_platform_key
def put_member_departments(oid: str, uid: str) -> Reply:
    _org_or_404(oid)
    data = web.json_body(dio.MemberDepartmentsSchema())
    store = web.store()
    if not directory.is_member(store, oid, uid):
        raise NotFound(f"user {uid} is not a member of {oid}")
    coverage.assign_member(store, web.settings().pairwise_key, oid, uid, data["departments"])
    chosen = departments.member_departments(store, oid, uid)
    org_admin.audit(store, oid, PLATFORM, "member.departments", {"user": uid, "departments": chosen})
    return {"user_id": uid, "org_id": oid, "departments": chosen}


# --- bulk import -----------------------------------------------------------------------------


@bp.post("/import")
@documented(
    rs.ImportResultSchema,
    body=Lines(rs.ImportLineSchema),
    body_type="application/x-ndjson",
    errors={
        400: "Invalid lines (nothing was imported): `errors` names each line and field",
        413: "Request body too large",
        415: "Not NDJSON",
    },
    summary="Import users, organizations and memberships from NDJSON, all or nothing",
)
@require_platform_key
def import_ndjson() -> Reply:
    """NDJSON, one ``{"type": "user"|"org"|"department"|"membership", ...}`` per line; all or nothing."""
    if request.mimetype not in NDJSON_TYPES:
        raise UnsupportedMediaType(
            f"expected Content-Type: application/x-ndjson, got {request.mimetype or 'none'!r}"
        )
    body = request.get_data(cache=False)  # MAX_CONTENT_LENGTH applies: oversized -> 413
    bounded_json.check_lines(body, bounded_json.limit())  # before any line is parsed
    try:
        changes: list[tuple[str, departments.Change]] = []
        counts = dio.run_import(web.store(), body.splitlines(), now=int(time.time()), changes=changes)
    except dio.ImportInvalid as exc:
        raise ValidationFailed(
            f"{len(exc.errors)} line(s) are invalid; nothing was imported", fields=exc.as_fields()
        ) from None
    by_org: dict[str, list[departments.Change]] = {}
    for org_id, change in changes:  # members' new departments: apps whose coverage changed are told
        by_org.setdefault(org_id, []).append(change)
    for org_id, found in by_org.items():
        coverage.announce(web.store(), web.settings().pairwise_key, org_id, found)
    return {"imported": counts}
