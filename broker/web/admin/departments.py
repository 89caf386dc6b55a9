"""The admin console's department pages (``members.manage``) and an installation's departments
(``apps.manage``).

``/admin/orgs/<oid>/departments`` lists the tree and creates departments; each department's page
renames, moves (a cycle is refused) or deletes it and puts members in or takes them out. An app's
page chooses whether it covers the whole organization or chosen departments. The same operations
are JSON under ``/admin/v1/orgs/<oid>/departments``, ``.../members/<uid>/departments`` and
``.../installations/<client_id>/departments``. Every change is audited; apps whose covered members
change are told (broker.consent.coverage).
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, request
from flask_babel import gettext
from marshmallow import RAISE, Schema, validate
from marshmallow import fields as mf

from broker.consent import coverage, org_admin
from broker.consent.org_policy import APPS_MANAGE, MEMBERS_MANAGE
from broker.core import ids
from broker.directory import departments
from broker.directory import importer as dio
from broker.errors import Conflict, NotFound, ValidationFailed
from broker.web.admin.console import _fail, _member_rows, _org, _page, _role, bp
from broker.web.platform import schemas as ps
from broker.web.shared import consoles
from broker.web.shared import context as web
from broker.web.shared.openapi import Reply, documented, links_to
from broker.web.shared.responses import NO_STORE


def department_rows(oid: str) -> list[dict[str, Any]]:
    """The tree in display order (name, path, depth, direct members)."""
    return departments.listing(web.store(), oid)


def chosen_departments(form: Any) -> list[str] | None:
    """An install or change form's choice: None for the whole organization, else the ticked ids."""
    if form.get("coverage", "org") != "departments":
        return None
    return list(form.getlist("departments"))


def _key() -> str:
    return web.settings().pairwise_key


def _back(oid: str, dep_id: str | None = None) -> str:
    return f"/admin/orgs/{oid}/departments" + (f"/{dep_id}" if dep_id else "")


@bp.get("/admin/orgs/<oid>/departments")
def departments_page(oid: str) -> Any:
    _role(oid, MEMBERS_MANAGE)
    return _page("admin/departments.html", org=_org(oid), rows=department_rows(oid))


@bp.post("/admin/orgs/<oid>/departments")
def create_department_page(oid: str) -> Any:
    uid, _ = _role(oid, MEMBERS_MANAGE)
    store = web.store()
    try:
        record = departments.create(
            store, oid, request.form.get("name", ""), request.form.get("parent") or None
        )
    except (ValidationFailed, Conflict) as exc:
        return _fail(exc, _back(oid))
    org_admin.audit(
        store, oid, uid, "department.created", {"department": record["id"], "name": record["name"]}
    )
    flash(gettext("Department %(name)s created.", name=record["name"]), "success")
    return redirect(_back(oid), code=303)


@bp.get("/admin/orgs/<oid>/departments/<dep_id>")
def department_page(oid: str, dep_id: str) -> Any:
    _role(oid, MEMBERS_MANAGE)
    store = web.store()
    found = departments.get(store, oid, dep_id)
    rows = department_rows(oid)
    here = next(r for r in rows if r["id"] == dep_id)
    # a department cannot move under itself or below it: those are left out of the choice
    below = {dep_id}
    for r in rows:
        if r["parent"] in below:
            below.add(r["id"])
    members = _member_rows(oid)
    inside = set(found["members"])
    return _page(
        "admin/department.html",
        org=_org(oid),
        dep=here,
        parents=[r for r in rows if r["id"] not in below],
        inside=[m for m in members if m["user_id"] in inside],
        outside=[m for m in members if m["user_id"] not in inside],
    )


def _dep_change(oid: str, dep_id: str, action: str) -> Any:
    uid, _ = _role(oid, MEMBERS_MANAGE)
    store = web.store()
    found = departments.get(store, oid, dep_id)  # 404 for an unknown id
    form = request.form
    try:
        if action == "rename":
            coverage.update_department(store, _key(), oid, dep_id, {"name": form.get("name", "")})
            details: dict[str, Any] = {"name": form.get("name", "").strip()}
            done = gettext("Department renamed.")
        elif action == "move":
            parent = form.get("parent") or None
            coverage.update_department(store, _key(), oid, dep_id, {"parent": parent})
            details = {"parent": parent}
            done = gettext("Department moved.")
        elif action == "delete":
            coverage.delete_department(store, _key(), oid, dep_id)
            details = {"name": found["name"]}
            done = gettext("Department %(name)s deleted.", name=found["name"])
        elif action == "join":
            target = form.get("user_id", "")
            coverage.join_department(store, _key(), oid, target, dep_id)
            details = {"user": target}
            done = gettext("Added to the department.")
        else:
            raise NotFound("no such page")
    except (ValidationFailed, Conflict) as exc:
        return _fail(exc, _back(oid, dep_id))
    except NotFound as exc:
        if action != "join":
            raise
        return _fail(exc, _back(oid, dep_id))
    what = {"rename": "department.changed", "move": "department.changed", "delete": "department.deleted"}
    org_admin.audit(
        store, oid, uid, what.get(action, "member.departments"), {"department": dep_id, **details}
    )
    flash(done, "success")
    return redirect(_back(oid) if action == "delete" else _back(oid, dep_id), code=303)


@bp.post("/admin/orgs/<oid>/departments/<dep_id>/<action>")
def department_change_page(oid: str, dep_id: str, action: str) -> Any:
    if action not in ("rename", "move", "delete", "join"):
        raise NotFound("no such page")
    return _dep_change(oid, dep_id, action)


@bp.post("/admin/orgs/<oid>/departments/<dep_id>/members/<target>/remove")
def department_leave_page(oid: str, dep_id: str, target: str) -> Any:
    uid, _ = _role(oid, MEMBERS_MANAGE)
    store = web.store()
    departments.get(store, oid, dep_id)
    try:
        coverage.leave_department(store, _key(), oid, target, dep_id)
    except NotFound as exc:
        return _fail(exc, _back(oid, dep_id))
    org_admin.audit(
        store, oid, uid, "member.departments", {"department": dep_id, "user": target, "left": True}
    )
    flash(gettext("Taken out of the department."), "success")
    return redirect(_back(oid, dep_id), code=303)


@bp.post("/admin/orgs/<oid>/apps/<client_id>/departments")
def app_departments_page(oid: str, client_id: str) -> Any:
    """Change which members an added app covers: the whole organization or chosen departments."""
    uid, _ = _role(oid, APPS_MANAGE)
    store = web.store()
    record = org_admin.center_app(store, client_id)
    chosen = chosen_departments(request.form)
    back = f"/admin/orgs/{oid}/apps/{client_id}"
    try:
        result = coverage.set_departments(store, _key(), oid, client_id, chosen, uid)
    except (ValidationFailed, NotFound) as exc:
        return _fail(exc, back)
    if result["changed"]:
        org_admin.audit(
            store, oid, uid, "installation.departments", {"app": client_id, "departments": chosen}
        )
    count = departments.covered_count(store, oid, client_id)
    flash(gettext("%(app)s now covers %(count)s members.", app=record["name"], count=count), "success")
    return redirect(back, code=303)


def coverage_view(oid: str, client_id: str) -> dict[str, Any]:
    """For the app page: the chosen departments (names) or None, and how many members it covers."""
    store = web.store()
    chosen = departments.installation_departments(store, oid, client_id)
    rows = department_rows(oid)
    names = {r["id"]: r["path"] for r in rows}
    return {
        "departments": None if chosen is None else [names.get(d, d) for d in chosen],
        "chosen_ids": chosen or [],
        "covered": departments.covered_count(store, oid, client_id),
        "rows": rows,
    }


# -- the same as JSON (/admin/v1, session + CSRF) ---------------------------------------------------

_MEMBER = {404: "Not a member of this organization (its existence is private)"}
_MANAGE = {403: "A member without the permission this needs", **_MEMBER}
_DEP = {**_MANAGE, 404: "Not a member, or no such department"}


class InstallationCoverageBodySchema(Schema):
    class Meta:
        unknown = RAISE

    departments = mf.List(
        mf.String(validate=validate.Regexp(ids.DEPARTMENT_ID, error="not a department id")),
        required=True,
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={
            "description": "cover only these departments and their sub-departments; null: the whole org"
        },
    )


class InstallationCoverageSchema(Schema):
    departments = mf.List(mf.String(), required=True, allow_none=True)
    covered_members = mf.Integer(required=True)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return body, status, {**NO_STORE, **(headers or {})}


@bp.get("/admin/v1/orgs/<oid>/departments")
@documented(ps.DepartmentListSchema, errors=_MANAGE, summary="The organization's departments, in tree order")
def api_departments(oid: str) -> Reply:
    _role(oid, MEMBERS_MANAGE)
    return _json({"departments": department_rows(oid)})


@bp.post("/admin/v1/orgs/<oid>/departments")
@documented(
    ps.DepartmentSchema,
    status=201,
    location=True,
    links=links_to(
        "/admin/v1/orgs/{oid}/departments/{dep_id}",
        {"oid": "$request.path.oid", "dep_id": "$response.body#/id"},
        GetDepartment="get",
        UpdateDepartment="patch",
        DeleteDepartment="delete",
    ),
    body=dio.DepartmentCreateSchema,
    errors={**_MANAGE, 409: "The organization has too many departments"},
    summary="Create a department (at the top level or under a parent)",
)
def api_create_department(oid: str) -> Reply:
    uid, _ = _role(oid, MEMBERS_MANAGE)
    data = consoles.load(dio.DepartmentCreateSchema(), consoles.json_payload())
    store = web.store()
    record = departments.create(store, oid, data["name"], data.get("parent"))
    org_admin.audit(
        store, oid, uid, "department.created", {"department": record["id"], "name": record["name"]}
    )
    return _json(record, 201, {"Location": f"/admin/v1/orgs/{oid}/departments/{record['id']}"})


@bp.get("/admin/v1/orgs/<oid>/departments/<dep_id>")
@documented(ps.DepartmentDetailSchema, errors=_DEP, summary="One department and its direct members")
def api_department(oid: str, dep_id: str) -> Reply:
    _role(oid, MEMBERS_MANAGE)
    return _json(departments.get(web.store(), oid, dep_id))


@bp.patch("/admin/v1/orgs/<oid>/departments/<dep_id>")
@documented(
    ps.DepartmentSchema,
    body=dio.DepartmentUpdateSchema,
    errors=_DEP,
    summary="Rename a department or move it (a move under itself or its sub-departments is refused)",
)
def api_update_department(oid: str, dep_id: str) -> Reply:
    uid, _ = _role(oid, MEMBERS_MANAGE)
    data = consoles.load(dio.DepartmentUpdateSchema(), consoles.json_payload())
    store = web.store()
    coverage.update_department(store, _key(), oid, dep_id, data)
    org_admin.audit(store, oid, uid, "department.changed", {"department": dep_id, **data})
    found = departments.get(store, oid, dep_id)
    return _json({k: found[k] for k in ("id", "name", "parent")})


@bp.delete("/admin/v1/orgs/<oid>/departments/<dep_id>")
@documented(
    status=204,
    errors={**_DEP, 409: "The department has sub-departments"},
    summary="Delete a department without sub-departments; its members leave it",
)
def api_delete_department(oid: str, dep_id: str) -> Reply:
    uid, _ = _role(oid, MEMBERS_MANAGE)
    store = web.store()
    found = departments.get(store, oid, dep_id)
    coverage.delete_department(store, _key(), oid, dep_id)
    org_admin.audit(store, oid, uid, "department.deleted", {"department": dep_id, "name": found["name"]})
    return Response(status=204, headers=NO_STORE)


@bp.put("/admin/v1/orgs/<oid>/members/<target>/departments")
@documented(
    ps.MemberDepartmentsResultSchema,
    body=dio.MemberDepartmentsSchema,
    errors={**_MANAGE, 404: "Not a member (you or the person)"},
    summary="Put a member in departments (replacing the previous ones; [] for none)",
)
def api_member_departments(oid: str, target: str) -> Reply:
    uid, _ = _role(oid, MEMBERS_MANAGE)
    data = consoles.load(dio.MemberDepartmentsSchema(), consoles.json_payload())
    store = web.store()
    coverage.assign_member(store, _key(), oid, target, data["departments"])
    chosen = departments.member_departments(store, oid, target)
    org_admin.audit(store, oid, uid, "member.departments", {"user": target, "departments": chosen})
    return _json({"user_id": target, "org_id": oid, "departments": chosen})


@bp.put("/admin/v1/orgs/<oid>/installations/<client_id>/departments")
@documented(
    InstallationCoverageSchema,
    body=InstallationCoverageBodySchema,
    errors={**_MANAGE, 404: "Not a member, or the app is not added"},
    summary="Choose which members an added app covers: chosen departments, or null for the whole org",
)
def api_installation_departments(oid: str, client_id: str) -> Reply:
    uid, _ = _role(oid, APPS_MANAGE)
    data = consoles.load(InstallationCoverageBodySchema(), consoles.json_payload())
    store = web.store()
    result = coverage.set_departments(store, _key(), oid, client_id, data["departments"], uid)
    if result["changed"]:
        org_admin.audit(
            store,
            oid,
            uid,
            "installation.departments",
            {"app": client_id, "departments": result["departments"]},
        )
    return _json(coverage.describe(store, oid, client_id))
