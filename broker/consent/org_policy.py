"""Who may do what in an organization (admin console, issue 5 item 2).

Roles live in ``keys.org_roles(oid)`` (uid -> JSON ``{"role", "permissions"}``); membership is the
org's member set. Owners may do everything; admins everything except disbanding; sub-admins only
what their grantable permissions say; members nothing administrative. A person who is not a member
(or an org that does not exist) gets ``None`` from :func:`role_of`, so callers answer 404: the
existence of an organization is private to its members.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from broker.core import permissions
from broker.core.ids import ORG_ID_RE
from broker.core.records import Membership
from broker.errors import Forbidden, NotFound
from broker.storage import keys
from broker.storage.store import Store

# The vocabulary is broker.core.permissions, shared with the platform API and the import.
ROLES = permissions.ROLES
GRANTABLE = permissions.GRANTABLE
ADMINS_MANAGE = permissions.ADMINS_MANAGE
AUDIT_READ = permissions.AUDIT_READ
ORG_DISBAND = permissions.ORG_DISBAND
APPS_MANAGE = permissions.APPS_MANAGE
MEMBERS_MANAGE = permissions.MEMBERS_MANAGE
DISCLOSURES_READ = permissions.DISCLOSURES_READ


@dataclass(frozen=True)
class Role:
    role: str
    permissions: tuple[str, ...] = field(default=())

    @property
    def administers(self) -> bool:
        """Owner, admin, or a sub-admin holding at least one permission: may open the console."""
        return self.role in ("owner", "admin") or (self.role == "sub_admin" and bool(self.permissions))


def _parse(raw: str | None) -> Role:
    """A missing or unreadable role entry of a member means plain member (fail closed)."""
    if not raw:
        return Role("member")
    try:
        entry = Membership.from_hash({"": raw})
    except (ValueError, TypeError, KeyError, AttributeError):
        return Role("member")
    if entry.role not in ROLES:
        return Role("member")
    return Role(entry.role, tuple(p for p in entry.permissions if p in GRANTABLE))


def role_of(store: Store, oid: str, uid: str | None) -> Role | None:
    """The person's role in the org, or None if they are not a member (or the org does not exist)."""
    if not uid or not ORG_ID_RE.match(oid):
        return None
    pipe = store.redis.pipeline(transaction=False)
    pipe.exists(keys.org(oid))
    pipe.zscore(keys.org_members(oid), uid)
    pipe.hget(keys.org_roles(oid), uid)
    exists, score, raw = pipe.execute()
    if not exists or score is None:
        return None
    return _parse(raw)


def allows(role: Role | None, permission: str) -> bool:
    if role is None:
        return False
    if role.role == "owner":
        return True
    if role.role == "admin":
        return permission != ORG_DISBAND
    if role.role == "sub_admin":
        return permission in role.permissions or (permission == AUDIT_READ and bool(role.permissions))
    return False


def can(store: Store, oid: str, uid: str | None, permission: str) -> bool:
    return allows(role_of(store, oid, uid), permission)


def require(store: Store, oid: str, uid: str | None, permission: str | None) -> Role:
    """The caller's role if they hold ``permission`` (None: any member); 404 for non-members, else 403."""
    role = role_of(store, oid, uid)
    if role is None:
        raise NotFound(f"no organization with id {oid!r}")
    if permission is not None and not allows(role, permission):
        raise Forbidden(f"this needs the {permission!r} permission in the organization")
    return role


def encode(role: str, permissions: list[str] | tuple[str, ...] = ()) -> str:
    return json.dumps({"role": role, "permissions": list(permissions)})


# -- which apps an organization lets in -----------------------------------------------------------


@dataclass(frozen=True)
class AppRefusal:
    """Why an organization keeps an app away from its member: ``blocked`` (on its block list) or
    ``mini_programs_off`` (members may not add mini-programs, and the app is not on its allow list)."""

    org_id: str
    org_name: str
    reason: str


def _policy_row(raw: dict[str, str]) -> tuple[bool, set[str], set[str]]:
    allow = raw.get("allow_member_mini_programs") != "0"
    return allow, set((raw.get("allowed_apps") or "").split()), set((raw.get("blocked_apps") or "").split())


def refusal_for_member(store: Store, uid: str, client_id: str) -> AppRefusal | None:
    """The first of the person's organizations whose policy refuses this mini-program, or None.

    Every organization the person belongs to counts: an app one of them forbids is refused, as on
    platforms where a managed account follows each of its organizations' rules.
    """
    for oid in sorted(store.redis.smembers(keys.user_orgs(uid))):
        raw = store.redis.hmget(
            keys.org(oid), ["name", "allow_member_mini_programs", "allowed_apps", "blocked_apps"]
        )
        if raw[0] is None:
            continue
        allow, allowed, blocked = _policy_row(
            {
                "allow_member_mini_programs": raw[1] or "",
                "allowed_apps": raw[2] or "",
                "blocked_apps": raw[3] or "",
            }
        )
        if client_id in blocked:
            return AppRefusal(oid, raw[0], "blocked")
        if not allow and client_id not in allowed:
            return AppRefusal(oid, raw[0], "mini_programs_off")
    return None


def blocked_in_org(store: Store, oid: str, client_id: str) -> bool:
    """Whether the organization blocks this app (its App Center hides it and it cannot be added)."""
    return client_id in set((store.redis.hget(keys.org(oid), "blocked_apps") or "").split())
