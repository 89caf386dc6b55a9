"""Directory input: marshmallow schemas and the all-or-nothing NDJSON import.

Shared by the platform API (``/internal/v1``) and ``broker directory import``: both validate every
record first and write only when all are valid (nothing half-written, DESIGN invariant 7).
Unknown fields are rejected (marshmallow's default ``RAISE``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from broker.core import ids
from broker.directory import departments
from broker.directory import service as directory
from broker.storage import keys
from broker.storage.store import Store

Progress = Callable[[int, int], None]

_username = fields.String(
    required=True,
    validate=validate.Regexp(
        ids.USERNAME_RE,
        error="2 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
)
_id_user = validate.Regexp(ids.USER_ID_RE, error="expected usr_ followed by 16 lowercase hex digits")
_id_org = validate.Regexp(ids.ORG_ID_RE, error="expected org_ followed by 16 lowercase hex digits")
_id_app = validate.Regexp(ids.CLIENT_ID_RE, error="expected app_ followed by 16 lowercase hex digits")
_password = validate.Length(min=8, max=1024, error="expected 8 to 1024 characters")


def _text(max_len: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=max_len), **kwargs)


class UserCreateSchema(Schema):
    id = fields.String(validate=_id_user)
    username = _username
    password = fields.String(validate=_password, load_only=True)
    password_hash = fields.String(
        validate=validate.Regexp(r"^\$argon2(id|i|d)\$", error="expected an argon2 hash"), load_only=True
    )
    nickname = _text(64)
    avatar = fields.URL(schemes={"http", "https"}, allow_none=True)
    name = _text(128, allow_none=True)
    email = fields.Email(allow_none=True)
    mobile = fields.String(
        validate=validate.Regexp(r"^\+?[0-9 ()-]{5,24}$", error="expected a phone number"), allow_none=True
    )

    @validates_schema
    def one_password(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("password") and data.get("password_hash"):
            raise ValidationError("give password or password_hash, not both", "password_hash")


class UserUpdateSchema(Schema):
    username = fields.String(validate=validate.Regexp(ids.USERNAME_RE, error="invalid username"))
    password = fields.String(validate=_password, load_only=True)
    nickname = _text(64)
    avatar = fields.URL(schemes={"http", "https"}, allow_none=True)
    name = _text(128, allow_none=True)
    email = fields.Email(allow_none=True)
    mobile = fields.String(
        validate=validate.Regexp(r"^\+?[0-9 ()-]{5,24}$", error="expected a phone number"), allow_none=True
    )


class OrgCreateSchema(Schema):
    id = fields.String(validate=_id_org)
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    allow_member_mini_programs = fields.Boolean()


class OrgUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=128))
    allow_member_mini_programs = fields.Boolean()
    allowed_apps = fields.List(
        fields.String(validate=_id_app),
        validate=validate.Length(max=500),
        metadata={"description": "apps members may use even when mini-programs are off"},
    )
    blocked_apps = fields.List(
        fields.String(validate=_id_app),
        validate=validate.Length(max=500),
        metadata={
            "description": "apps blocked for the organization: members' mini-programs, App Center apps"
        },
    )


class RoleSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(directory.ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(directory.PERMISSIONS)))

    @validates_schema
    def permissions_only_for_sub_admin(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("permissions") and data.get("role") != "sub_admin":
            raise ValidationError("permissions apply only to role sub_admin", "permissions")


_id_department = validate.Regexp(
    ids.DEPARTMENT_ID_RE, error="expected dep_ followed by 16 lowercase hex digits"
)
_department_name = fields.String(validate=validate.Length(min=1, max=128))


class DepartmentCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    parent = fields.String(
        allow_none=True,
        validate=_id_department,
        metadata={"description": "parent department; none: top level"},
    )


class DepartmentUpdateSchema(Schema):
    name = _department_name
    parent = fields.String(
        allow_none=True,
        validate=_id_department,
        metadata={"description": "move under this department; null: to the top level"},
    )

    @validates_schema
    def something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("send name, parent or both", "_schema")


class MemberDepartmentsSchema(Schema):
    departments = fields.List(
        fields.String(validate=_id_department),
        required=True,
        validate=validate.Length(max=50),
        metadata={"description": "every department the member is in (replaces the previous ones)"},
    )


class MembershipImportSchema(RoleSchema):
    org_id = fields.String(required=True, validate=_id_org)
    user_id = fields.String(validate=_id_user)
    username = fields.String()
    departments = fields.List(
        fields.String(validate=_id_department),
        validate=validate.Length(max=50),
        metadata={"description": "departments of the org the member is in (replaces the previous ones)"},
    )

    @validates_schema
    def one_user_ref(self, data: dict[str, Any], **kwargs: Any) -> None:
        if bool(data.get("user_id")) == bool(data.get("username")):
            raise ValidationError("give exactly one of user_id or username", "user_id")


class DepartmentImportSchema(Schema):
    org_id = fields.String(required=True, validate=_id_org)
    id = fields.String(
        required=True, validate=_id_department, metadata={"description": "so other lines can name it"}
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    parent = fields.String(allow_none=True, validate=_id_department)


IMPORT_SCHEMAS: dict[str, type[Schema]] = {
    "user": UserCreateSchema,
    "org": OrgCreateSchema,
    "department": DepartmentImportSchema,
    "membership": MembershipImportSchema,
}


@dataclass
class Plan:
    """A fully validated import, ready to write."""

    users: list[dict[str, str]] = field(default_factory=list)
    orgs: list[dict[str, str]] = field(default_factory=list)
    memberships: list[tuple[str, str, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # user line numbers, parallel to users
    # (org id, department id, name, parent or ""), parents before children
    departments: list[tuple[str, str, str, str]] = field(default_factory=list)
    # (org id, user id, department ids) for membership lines that name departments
    placements: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (
            len(self.users)
            + len(self.orgs)
            + len(self.memberships)
            + len(self.departments)
            + len(self.placements)
        )


class ImportInvalid(Exception):
    """Some lines are invalid; ``errors`` maps line number -> field -> messages."""

    def __init__(self, errors: dict[int, dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid line(s)")
        self.errors = errors

    def as_fields(self) -> dict[str, Any]:
        return {str(n): errs for n, errs in sorted(self.errors.items())}

    def lines(self) -> list[str]:
        out = []
        for n, errs in sorted(self.errors.items()):
            for name, messages in errs.items():
                text = "; ".join(_flatten(messages))
                out.append(f"line {n}: {name}: {text}")
        return out


def _flatten(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, dict):
        return [f"{k}: {m}" for k, v in messages.items() for m in _flatten(v)]
    return [m for item in messages for m in _flatten(item)]


Records = list[tuple[int, dict[str, Any]]]


def parse_lines(raw_lines: Iterable[bytes | str]) -> tuple[Records, dict[int, dict[str, Any]]]:
    """JSON-decode each non-blank line; returns (records with line numbers, errors by line)."""
    records: list[tuple[int, dict[str, Any]]] = []
    errors: dict[int, dict[str, Any]] = {}
    for number, raw in enumerate(raw_lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            errors[number] = {"_line": ["not valid UTF-8"]}
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            errors[number] = {"_line": [f"not valid JSON ({exc.msg} at column {exc.colno})"]}
            continue
        except RecursionError:  # the HTTP import refuses these before parsing (bounded_json)
            errors[number] = {"_line": ["JSON nested too deeply"]}
            continue
        if not isinstance(value, dict):
            errors[number] = {"_line": ["expected a JSON object"]}
            continue
        records.append((number, value))
    return records, errors


def prepare(
    store: Store,
    records: list[tuple[int, dict[str, Any]]],
    errors: dict[int, dict[str, Any]] | None = None,
    *,
    now: int,
    progress: Progress | None = None,
) -> Plan:
    """Validate every record (schemas, duplicates, references); raise ImportInvalid listing all."""
    errors = dict(errors or {})
    loaded: list[tuple[int, str, dict[str, Any]]] = []
    for number, value in records:
        kind = value.get("type")
        schema_cls = IMPORT_SCHEMAS.get(kind) if isinstance(kind, str) else None
        if schema_cls is None or not isinstance(kind, str):
            errors[number] = {"type": [f"expected one of {', '.join(IMPORT_SCHEMAS)}"]}
            continue
        body = {k: v for k, v in value.items() if k != "type"}
        try:
            loaded.append((number, kind, schema_cls().load(body)))
        except ValidationError as exc:
            errors[number] = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}

    # Cross-record checks: unique usernames and ids, memberships that point at something real.
    users = [(n, d) for n, k, d in loaded if k == "user"]
    orgs = [(n, d) for n, k, d in loaded if k == "org"]
    members = [(n, d) for n, k, d in loaded if k == "membership"]
    user_ids = {n: d.get("id") or ids.new_user_id() for n, d in users}
    org_ids = {n: d.get("id") or ids.new_org_id() for n, d in orgs}
    pipe = store.redis.pipeline(transaction=False)
    for n, d in users:
        pipe.exists(keys.username_index(d["username"]))
        pipe.exists(keys.user(user_ids[n]))
    for n, _ in orgs:
        pipe.exists(keys.org(org_ids[n]))
    existing = pipe.execute()

    seen_names: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    by_username: dict[str, str] = {}
    for i, (n, d) in enumerate(users):
        name_taken, id_taken = existing[2 * i], existing[2 * i + 1]
        lowered = d["username"].lower()
        if name_taken:
            errors.setdefault(n, {})["username"] = ["already taken"]
        elif lowered in seen_names:
            errors.setdefault(n, {})["username"] = [f"duplicates line {seen_names[lowered]}"]
        seen_names.setdefault(lowered, n)
        uid = user_ids[n]
        if id_taken:
            errors.setdefault(n, {})["id"] = ["a user with this id already exists"]
        elif uid in seen_ids:
            errors.setdefault(n, {})["id"] = [f"duplicates line {seen_ids[uid]}"]
        seen_ids.setdefault(uid, n)
        by_username.setdefault(lowered, uid)
    new_org_ids: dict[str, int] = {}
    for i, (n, _) in enumerate(orgs):
        oid = org_ids[n]
        if existing[2 * len(users) + i]:
            errors.setdefault(n, {})["id"] = ["an organization with this id already exists"]
        elif oid in new_org_ids:
            errors.setdefault(n, {})["id"] = [f"duplicates line {new_org_ids[oid]}"]
        new_org_ids.setdefault(oid, n)

    # Resolve membership references against this import first, then the store.
    lookup = store.redis.pipeline(transaction=False)
    for _, d in members:
        lookup.exists(keys.org(d["org_id"]))
        if d.get("user_id"):
            lookup.hget(keys.user(d["user_id"]), "status")
        else:
            lookup.get(keys.username_index(d["username"]))
    found = lookup.execute()
    new_departments, placements = _check_departments(
        store, [(n, d) for n, k, d in loaded if k == "department"], members, set(new_org_ids), errors
    )
    memberships: list[tuple[str, str, str]] = []
    for i, (n, d) in enumerate(members):
        org_exists, user_ref = found[2 * i], found[2 * i + 1]
        if d["org_id"] not in new_org_ids and not org_exists:
            errors.setdefault(n, {})["org_id"] = ["no such organization"]
        if d.get("user_id"):
            uid = d["user_id"]
            if uid not in seen_ids and user_ref != "active":
                errors.setdefault(n, {})["user_id"] = ["no such user"]
        else:
            uid = by_username.get(d["username"].lower()) or (user_ref or "")
            if not uid:
                errors.setdefault(n, {})["username"] = ["no such user"]
        memberships.append((d["org_id"], uid, directory.role_value(d["role"], d.get("permissions", ()))))
        if "departments" in d:
            placements.append((d["org_id"], uid, list(dict.fromkeys(d["departments"]))))

    if errors:
        raise ImportInvalid(errors)

    plan = Plan(memberships=memberships, departments=new_departments, placements=placements)
    plan.orgs = [directory.org_record(d, org_ids[n], now) for n, d in orgs]
    total = len(users)
    for done, (n, d) in enumerate(users, start=1):
        plan.users.append(directory.user_records(d, user_ids[n], now))  # argon2 runs here: the slow part
        plan.lines.append(n)
        if progress is not None:
            progress(done, total)
    return plan


def _check_departments(
    store: Store,
    lines: list[tuple[int, dict[str, Any]]],
    members: list[tuple[int, dict[str, Any]]],
    new_orgs: set[str],
    errors: dict[int, dict[str, Any]],
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, list[str]]]]:
    """Department lines: the org exists (here or in the store), the id is new, the parent is a
    department of the same org, no cycle, not too deep; membership lines name departments of their
    org. Returns the departments parents-first (placements are filled by the caller)."""
    orgs = sorted({d["org_id"] for _, d in lines} | {d["org_id"] for _, d in members if d.get("departments")})
    stored = {oid: departments.tree(store, oid) for oid in orgs}
    org_exists = {oid: oid in new_orgs or bool(store.redis.exists(keys.org(oid))) for oid in orgs}
    new: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for n, d in lines:
        oid, dep_id = d["org_id"], d["id"]
        if not org_exists[oid]:
            errors.setdefault(n, {})["org_id"] = ["no such organization"]
        elif dep_id in stored[oid]:
            errors.setdefault(n, {})["id"] = ["this organization already has a department with this id"]
        elif (oid, dep_id) in new:
            errors.setdefault(n, {})["id"] = [f"duplicates line {new[(oid, dep_id)][0]}"]
        elif not d["name"].strip():
            errors.setdefault(n, {})["name"] = ["give a name that is not only spaces"]
        else:
            new[(oid, dep_id)] = (n, d)
    for oid in orgs:
        count = len(stored[oid]) + sum(1 for o, _ in new if o == oid)
        if count > departments.MAX_DEPARTMENTS:
            first = min(n for (o, _), (n, _) in new.items() if o == oid)
            errors.setdefault(first, {})["org_id"] = [
                f"an organization may have at most {departments.MAX_DEPARTMENTS} departments"
            ]

    def parent_of(oid: str, dep_id: str) -> str | None:
        if (oid, dep_id) in new:
            return str(new[(oid, dep_id)][1].get("parent") or "")
        if dep_id in stored[oid]:
            return stored[oid][dep_id]["parent"]
        return None  # no such department

    ordered: list[tuple[int, str, str, str, str]] = []
    for (oid, dep_id), (n, d) in new.items():
        parent = str(d.get("parent") or "")
        if parent and parent_of(oid, parent) is None:
            errors.setdefault(n, {})["parent"] = ["no such department in this organization"]
            continue
        depth, cur, seen = 0, dep_id, set()
        while cur and cur not in seen and depth <= departments.MAX_DEPTH:
            seen.add(cur)
            depth += 1
            cur = parent_of(oid, cur) or ""
        if cur in seen:
            errors.setdefault(n, {})["parent"] = ["the departments' parents form a cycle"]
        elif depth > departments.MAX_DEPTH:
            errors.setdefault(n, {})["parent"] = [
                f"the tree may be at most {departments.MAX_DEPTH} levels deep"
            ]
        else:
            ordered.append((depth, oid, dep_id, d["name"], parent))
    for n, d in members:
        oid = d["org_id"]
        unknown = [x for x in d.get("departments") or [] if oid in stored and parent_of(oid, x) is None]
        if unknown:
            errors.setdefault(n, {})["departments"] = [
                f"no such department in this organization: {', '.join(unknown)}"
            ]
    ordered.sort(key=lambda row: row[0])  # parents (shallower) first
    return [(oid, dep_id, name, parent) for _, oid, dep_id, name, parent in ordered], []


def apply(
    store: Store,
    plan: Plan,
    *,
    chunk: int = 500,
    progress: Progress | None = None,
    changes: list[tuple[str, departments.Change]] | None = None,
) -> None:
    """Write a prepared plan. Usernames are claimed first, all or none (a race loses cleanly).
    Coverage changes from members' new departments are added to ``changes`` as (org id, change)
    (the caller tells the apps)."""
    taken = directory.claim_usernames(store, {u["username"]: u["id"] for u in plan.users})
    if taken:
        line_of = {u["username"]: n for u, n in zip(plan.users, plan.lines, strict=True)}
        raise ImportInvalid({line_of[name]: {"username": ["already taken"]} for name in taken})
    done, total = 0, plan.total
    batches: tuple[tuple[list[Any], Any], ...] = (
        (plan.users, directory.write_users),
        (plan.orgs, directory.write_orgs),
        (plan.memberships, directory.add_members_bulk),
    )
    for items, write in batches:
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            write(store, part)
            done += len(part)
            if progress is not None:
                progress(done, total)
    for oid, dep_id, name, parent in plan.departments:
        departments.create(store, oid, name, parent or None, dep_id)
        done += 1
    for oid, uid, dep_ids in plan.placements:
        found = departments.assign(store, oid, uid, dep_ids)
        if changes is not None:
            changes.extend((oid, c) for c in found)
        done += 1
    if progress is not None and (plan.departments or plan.placements):
        progress(done, total)


def run_import(
    store: Store,
    raw_lines: Iterable[bytes | str],
    *,
    now: int,
    changes: list[tuple[str, departments.Change]] | None = None,
) -> dict[str, int]:
    """Validate then write; returns counts. Raises ImportInvalid (nothing written)."""
    records, errors = parse_lines(raw_lines)
    plan = prepare(store, records, errors, now=now)
    apply(store, plan, changes=changes)
    return {
        "users": len(plan.users),
        "orgs": len(plan.orgs),
        "memberships": len(plan.memberships),
        "departments": len(plan.departments),
    }
