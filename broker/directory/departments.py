"""Departments: a tree per organization, members in departments, and which members an installation
covers.

Layout (docs/data-model.md), all in the org's slot ``{o:<org_id>}``: the tree is one hash (id ->
``{"name", "parent"}``), each member's departments one hash field, an installation limited to chosen
departments a field of the coverage config, and its covered members a sorted set scored by join
sequence (what the members API pages). Every change runs in ``org_departments.lua`` with all those
keys in KEYS, so the tree, the memberships and every coverage set change together; the script
returns who entered or left each installation's coverage so the caller can tell the apps.

An installation without a coverage-config field covers the whole organization. One with a field
covers the members of its departments and their sub-departments, and nobody when those are gone
(never the whole organization: fail closed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from broker.core.ids import DEPARTMENT_ID_RE, ORG_ID_RE, new_department_id
from broker.errors import Conflict, NotFound, ValidationFailed
from broker.storage import keys
from broker.storage.store import Store

MAX_DEPARTMENTS = 5000  # per organization
MAX_DEPTH = 32  # levels of the tree
MAX_PER_MEMBER = 50  # departments one member is in
NAME_MAX = 128
_ATTEMPTS = 5  # retries when an installation was limited between reading the config and the script


@dataclass(frozen=True)
class Change:
    """Who entered (``added``) or left (``removed``) one installation's coverage."""

    client_id: str
    added: tuple[str, ...]
    removed: tuple[str, ...]


# -- reading ----------------------------------------------------------------------------------------


def _require_org(store: Store, oid: str) -> None:
    if not ORG_ID_RE.match(oid) or not store.redis.exists(keys.org(oid)):
        raise NotFound(f"no organization with id {oid!r}")


def tree(store: Store, oid: str) -> dict[str, dict[str, str]]:
    """Every department: id -> {"name", "parent"} (parent "" at the top)."""
    raw = store.redis.hgetall(keys.org_departments(oid))
    out = {}
    for dep_id, value in raw.items():
        record = json.loads(value)
        out[dep_id] = {"name": str(record.get("name", "")), "parent": str(record.get("parent") or "")}
    return out


def member_departments(store: Store, oid: str, uid: str) -> list[str]:
    return str(store.redis.hget(keys.org_member_departments(oid), uid) or "").split()


def all_member_departments(store: Store, oid: str) -> dict[str, list[str]]:
    """Member id -> department ids, for every member in at least one department."""
    return {uid: v.split() for uid, v in store.redis.hgetall(keys.org_member_departments(oid)).items()}


def listing(store: Store, oid: str) -> list[dict[str, Any]]:
    """Departments in tree order (parents before children, siblings by name) with their depth, path
    and number of direct members."""
    _require_org(store, oid)
    deps = tree(store, oid)
    counts: dict[str, int] = {}
    for dep_ids in all_member_departments(store, oid).values():
        for dep_id in dep_ids:
            counts[dep_id] = counts.get(dep_id, 0) + 1
    children: dict[str, list[str]] = {}
    for dep_id, record in deps.items():
        parent = record["parent"] if record["parent"] in deps else ""
        children.setdefault(parent, []).append(dep_id)
    out: list[dict[str, Any]] = []

    def walk(parent: str, depth: int, path: list[str]) -> None:
        for dep_id in sorted(children.get(parent, []), key=lambda d: (deps[d]["name"].lower(), d)):
            here = [*path, deps[dep_id]["name"]]
            out.append(
                {
                    "id": dep_id,
                    "name": deps[dep_id]["name"],
                    "parent": deps[dep_id]["parent"] or None,
                    "depth": depth,
                    "path": " / ".join(here),
                    "members": counts.get(dep_id, 0),
                }
            )
            if depth < MAX_DEPTH + 1:
                walk(dep_id, depth + 1, here)

    walk("", 0, [])
    return out


def get(store: Store, oid: str, dep_id: str) -> dict[str, Any]:
    """One department with its direct members (user ids in join order)."""
    _require_org(store, oid)
    raw = store.redis.hget(keys.org_departments(oid), dep_id) if DEPARTMENT_ID_RE.match(dep_id) else None
    if raw is None:
        raise NotFound(f"no department {dep_id!r} in this organization")
    record = json.loads(raw)
    inside = {uid for uid, deps in all_member_departments(store, oid).items() if dep_id in deps}
    ordered = [uid for uid in store.redis.zrange(keys.org_members(oid), 0, -1) if uid in inside]
    return {
        "id": dep_id,
        "name": str(record.get("name", "")),
        "parent": str(record.get("parent") or "") or None,
        "members": ordered,
    }


def limits(store: Store, oid: str) -> dict[str, list[str]]:
    """client id -> chosen department ids, for every department-limited installation of the org."""
    return {c: v.split() for c, v in store.redis.hgetall(keys.org_coverage_config(oid)).items()}


def installation_departments(store: Store, oid: str, client_id: str) -> list[str] | None:
    """The departments an installation is limited to, or None when it covers the whole org."""
    raw = store.redis.hget(keys.org_coverage_config(oid), client_id)
    return None if raw is None else str(raw).split()


def covered_count(store: Store, oid: str, client_id: str) -> int:
    """How many members the installation covers (all members unless limited)."""
    if store.redis.hexists(keys.org_coverage_config(oid), client_id):
        return int(store.redis.zcard(keys.org_coverage(oid, client_id)))
    return int(store.redis.zcard(keys.org_members(oid)))


def page(
    store: Store, oid: str, client_id: str, after: int, limit: int
) -> tuple[list[tuple[str, int]], bool]:
    """Up to ``limit`` members the installation covers who joined after ``after``, and whether more
    follow: one script call (org_members_page.lua) that picks the member set or the coverage set."""
    rows = store.lua("org_members_page")(
        keys=[keys.org_members(oid), keys.org_coverage_config(oid), keys.org_coverage(oid, client_id)],
        args=[client_id, after, limit + 1, ""],
    )
    pairs = [(str(rows[i]), int(float(rows[i + 1]))) for i in range(0, len(rows), 2)]
    return pairs[:limit], len(pairs) > limit


def covers(store: Store, oid: str, client_id: str, uid: str) -> bool:
    """Whether the installation covers this member now (one script call)."""
    rows = store.lua("org_members_page")(
        keys=[keys.org_members(oid), keys.org_coverage_config(oid), keys.org_coverage(oid, client_id)],
        args=[client_id, -1, 1, uid],
    )
    return bool(rows)


# -- changing ---------------------------------------------------------------------------------------

_ERRORS: dict[str, Any] = {
    "no_department": lambda: NotFound("no such department in this organization"),
    "no_parent": lambda: ValidationFailed(
        "some fields are invalid", fields={"parent": ["no such department in this organization"]}
    ),
    "cycle": lambda: ValidationFailed(
        "some fields are invalid",
        fields={"parent": ["a department cannot be moved under itself or one of its sub-departments"]},
    ),
    "too_deep": lambda: ValidationFailed(
        "some fields are invalid", fields={"parent": [f"the tree may be at most {MAX_DEPTH} levels deep"]}
    ),
    "too_many": lambda: Conflict(f"an organization may have at most {MAX_DEPARTMENTS} departments"),
    "exists": lambda: Conflict("a department with this id already exists"),
    "has_children": lambda: Conflict("this department has sub-departments: move or delete them first"),
    "not_member": lambda: NotFound("this person is not a member of the organization"),
    "too_many_for_member": lambda: ValidationFailed(
        "some fields are invalid",
        fields={"departments": [f"a member may be in at most {MAX_PER_MEMBER} departments"]},
    ),
}


def _run(store: Store, oid: str, op: str, *args: Any, extra_client: str | None = None) -> list[Change]:
    """Run one operation of org_departments.lua with every limited installation's coverage set in
    KEYS (re-read and retried if an installation was limited meanwhile)."""
    for _ in range(_ATTEMPTS):
        configured: set[str] = {str(c) for c in store.redis.hkeys(keys.org_coverage_config(oid))}
        clients = sorted(configured | ({extra_client} if extra_client else set()))
        reply = store.lua("org_departments")(
            keys=[
                keys.org_departments(oid),
                keys.org_member_departments(oid),
                keys.org_members(oid),
                keys.org_coverage_config(oid),
                keys.org_roles(oid),
                *[keys.org_coverage(oid, c) for c in clients],
            ],
            args=[op, len(clients), *clients, *args],
        )
        status = str(reply[0])
        if status == "stale":
            continue
        if status != "ok":
            raise _ERRORS[status]()
        rest = [str(x) for x in reply[1:]]
        return [
            Change(rest[i], tuple(rest[i + 1].split()), tuple(rest[i + 2].split()))
            for i in range(0, len(rest), 3)
        ]
    raise Conflict("the organization's installations changed while saving: try again")


def _name(name: Any) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > NAME_MAX:
        raise ValidationFailed(
            "some fields are invalid", fields={"name": [f"give a name of 1 to {NAME_MAX} characters"]}
        )
    return text


def _parent(parent: Any) -> str:
    if parent is None or parent == "":
        return ""
    if not isinstance(parent, str) or not DEPARTMENT_ID_RE.match(parent):
        raise ValidationFailed(
            "some fields are invalid", fields={"parent": ["not a department id (dep_ and 16 hex digits)"]}
        )
    return parent


def create(
    store: Store, oid: str, name: str, parent: str | None = None, dep_id: str | None = None
) -> dict[str, Any]:
    _require_org(store, oid)
    text, parent_id = _name(name), _parent(parent)
    new_id = dep_id or new_department_id()
    if not DEPARTMENT_ID_RE.match(new_id):
        raise ValidationFailed("some fields are invalid", fields={"id": ["not a department id"]})
    _run(store, oid, "create", new_id, text, parent_id, MAX_DEPARTMENTS, MAX_DEPTH)
    return {"id": new_id, "name": text, "parent": parent_id or None}


def _existing(store: Store, oid: str, dep_id: str) -> None:
    _require_org(store, oid)
    if not DEPARTMENT_ID_RE.match(dep_id) or not store.redis.hexists(keys.org_departments(oid), dep_id):
        raise NotFound(f"no department {dep_id!r} in this organization")


def rename(store: Store, oid: str, dep_id: str, name: str) -> None:
    _existing(store, oid, dep_id)
    _run(store, oid, "rename", dep_id, _name(name))


def move(store: Store, oid: str, dep_id: str, parent: str | None) -> list[Change]:
    """Put a department under ``parent`` (None: top level); a cycle is refused."""
    _existing(store, oid, dep_id)
    return _run(store, oid, "move", dep_id, _parent(parent), MAX_DEPTH)


def delete(store: Store, oid: str, dep_id: str) -> list[Change]:
    """Delete a department without sub-departments; its members leave it, installations limited to
    it keep their other departments (or cover nobody)."""
    _existing(store, oid, dep_id)
    return _run(store, oid, "delete", dep_id)


def _dep_ids(store: Store, oid: str, dep_ids: Iterable[Any], field: str) -> list[str]:
    wanted = list(dict.fromkeys(dep_ids))
    bad = [d for d in wanted if not isinstance(d, str) or not DEPARTMENT_ID_RE.match(d)]
    problems = [f"not a department id: {', '.join(map(str, bad))}"] if bad else []
    if not bad and wanted:
        present = store.redis.hmget(keys.org_departments(oid), wanted)
        missing = [d for d, v in zip(wanted, present, strict=True) if v is None]
        if missing:
            problems.append(f"no such department in this organization: {', '.join(missing)}")
    if problems:
        raise ValidationFailed("some fields are invalid", fields={field: problems})
    return wanted


def assign(store: Store, oid: str, uid: str, dep_ids: Iterable[Any]) -> list[Change]:
    """Set the departments a member is in (replacing the previous ones; empty: none)."""
    _require_org(store, oid)
    wanted = _dep_ids(store, oid, dep_ids, "departments")
    if len(wanted) > MAX_PER_MEMBER:
        raise ValidationFailed(
            "some fields are invalid",
            fields={"departments": [f"a member may be in at most {MAX_PER_MEMBER} departments"]},
        )
    return _run(store, oid, "assign", uid, " ".join(wanted))


def join(store: Store, oid: str, uid: str, dep_id: str) -> list[Change]:
    """Put a member in one more department (their others stay)."""
    _existing(store, oid, dep_id)
    return _run(store, oid, "join", uid, dep_id, MAX_PER_MEMBER)


def leave(store: Store, oid: str, uid: str, dep_id: str) -> list[Change]:
    """Take a member out of one department (their others stay)."""
    _existing(store, oid, dep_id)
    return _run(store, oid, "leave", uid, dep_id)


def check_choice(store: Store, oid: str, dep_ids: Iterable[Any] | None) -> list[str] | None:
    """Validate an installation's departments (None: the whole organization)."""
    if dep_ids is None:
        return None
    wanted = _dep_ids(store, oid, dep_ids, "departments")
    if not wanted:
        raise ValidationFailed(
            "some fields are invalid",
            fields={
                "departments": ["choose at least one department, or leave it out for the whole organization"]
            },
        )
    return wanted


def set_coverage(store: Store, oid: str, client_id: str, dep_ids: list[str] | None) -> list[Change]:
    """Limit an installation to ``dep_ids`` (already checked), or let it cover the whole org (None)."""
    if dep_ids is None:
        return _run(store, oid, "unlimit", client_id, extra_client=client_id)
    return _run(store, oid, "limit", client_id, " ".join(dep_ids), extra_client=client_id)


def drop_coverage(store: Store, oid: str, client_id: str) -> None:
    """Forget an installation's departments and coverage set (it was removed)."""
    _run(store, oid, "drop_client", client_id, extra_client=client_id)


def remove_member(store: Store, oid: str, uid: str) -> list[str]:
    """Remove a member, their role, their departments and their place in every coverage set in one
    step; returns the clients whose coverage held them."""
    return [c.client_id for c in _run(store, oid, "remove_member", uid)]
