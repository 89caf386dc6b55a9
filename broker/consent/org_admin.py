"""Organization administration: the App Center view, member requests, sub-admins, audit, disband.

State lives in the org's slot (``{o:<org_id>}``): app requests (a hash), the audit trail (a
stream), roles and members. Installation changes run in the app's slot (broker.consent.installations)
and are announced there; the audit entry is written right after the change succeeds, since the two
slots cannot share one transaction on a cluster. A failed change writes no audit entry.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.apps import registry as apps_svc
from broker.config import Settings
from broker.consent import installations as inst_svc
from broker.consent import org_policy
from broker.core import cursors
from broker.core.catalog import Catalog
from broker.core.ids import USER_ID, new_request_id
from broker.core.pairwise import pairwise_id
from broker.directory import departments
from broker.directory import service as directory
from broker.errors import Conflict, NotFound, ValidationFailed
from broker.events import outbox as events
from broker.storage import keys
from broker.storage.store import Store

REQUEST_STATUSES = ("pending", "approved", "denied")
AUDIT_MAXLEN = 100_000  # approximate cap, so one org cannot grow its trail without bound
PLATFORM_ACTOR = "platform"  # the actor of changes made through the platform API


# -- audit ------------------------------------------------------------------------------------------


def audit(store: Store, oid: str, actor: str, action: str, details: dict[str, Any] | None = None) -> None:
    entry = {"who": actor, "what": action, "when": int(time.time()), "details": details or {}}
    store.redis.xadd(
        keys.org_audit(oid),
        {"a": json.dumps(entry, separators=(",", ":"))},
        maxlen=AUDIT_MAXLEN,
        approximate=True,
    )


AUDIT_SCAN = 1000  # entries one filtered page (or the filter choices) reads at most
_AUDIT_CURSOR = re.compile(r"audit:(\d{1,20}-\d{1,20})")
_ACTION = re.compile(r"[a-z_]{1,32}\.[a-z_]{1,32}")
_ACTOR = re.compile(rf"{USER_ID[1:-1]}|{re.escape(PLATFORM_ACTOR)}")


@dataclass
class AuditPage:
    entries: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None  # where the next (older) page starts; None: nothing older


def audit_trail(store: Store, oid: str, limit: int = 200) -> list[dict[str, Any]]:
    """Newest first."""
    return audit_page(store, oid, limit=limit).entries


def audit_page(
    store: Store,
    oid: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    what: str | None = None,
    who: str | None = None,
) -> AuditPage:
    """One page of the trail, newest first, from ``cursor`` (the ``next_cursor`` of the page before;
    opaque, a stream id inside), keeping entries whose action is ``what`` and actor ``who``.

    Filtering reads the stream in batches (XREVRANGE) and reads at most ``AUDIT_SCAN`` entries a
    page: a rare filter over a long trail may answer fewer entries than ``limit``, even none, with
    a ``next_cursor`` to read on from. Malformed values are a 400 naming the parameter."""
    if limit < 1:
        raise ValidationFailed("limit is out of range", fields={"limit": ["expected at least 1"]})
    if what is not None and not _ACTION.fullmatch(what):
        raise ValidationFailed(
            "what is not an action", fields={"what": ["expected an action such as member.added"]}
        )
    if who is not None and not _ACTOR.fullmatch(who):
        raise ValidationFailed("who is not a person", fields={"who": ["expected a user id or 'platform'"]})
    top = "+"
    if cursor:
        top = "(" + _audit_position(cursor)
    filtering = what is not None or who is not None
    batch = min(max(limit + 1, 100), AUDIT_SCAN) if filtering else limit + 1
    key = keys.org_audit(oid)
    found: list[dict[str, Any]] = []
    scanned, last = 0, None
    while True:
        chunk = store.redis.xrevrange(key, max=top, min="-", count=batch)
        for entry_id, fields in chunk:
            scanned += 1
            last = entry_id
            record = json.loads(fields["a"])
            record["id"] = entry_id
            if (what is None or record.get("what") == what) and (who is None or record.get("who") == who):
                found.append(record)
                if len(found) > limit:
                    return AuditPage(found[:limit], _audit_cursor(found[limit - 1]["id"]))
        if len(chunk) < batch or last is None:
            return AuditPage(found)  # the oldest entry was read
        if scanned >= AUDIT_SCAN:
            return AuditPage(found, _audit_cursor(last))  # read on from here on the next page
        top = "(" + last


def audit_choices(store: Store, oid: str) -> tuple[list[str], list[str]]:
    """The actions and actors in the newest ``AUDIT_SCAN`` entries (a filter form's choices)."""
    actions: set[str] = set()
    actors: set[str] = set()
    for _, fields in store.redis.xrevrange(keys.org_audit(oid), count=AUDIT_SCAN):
        record = json.loads(fields["a"])
        actions.add(str(record.get("what", "")))
        actors.add(str(record.get("who", "")))
    return sorted(a for a in actions if a), sorted(a for a in actors if a)


def _audit_cursor(entry_id: str) -> str:
    return cursors.encode(f"audit:{entry_id}")


def _audit_position(cursor: str) -> str:
    """The stream id inside a cursor this listing handed out; anything else is a 400."""
    try:
        found = _AUDIT_CURSOR.fullmatch(cursors.decode(cursor[:100]))
    except ValueError:
        found = None
    if found is None:
        raise ValidationFailed("cursor is invalid", fields={"cursor": ["not a cursor from this listing"]})
    return found.group(1)


# -- org and App Center -----------------------------------------------------------------------------


def org_record(store: Store, oid: str) -> dict[str, str]:
    raw: dict[str, str] = store.redis.hgetall(keys.org(oid))
    if not raw:
        raise NotFound(f"no organization with id {oid!r}")
    return raw


def member_count(store: Store, oid: str) -> int:
    return int(store.redis.zcard(keys.org_members(oid)))


def app_center(store: Store) -> list[dict[str, Any]]:
    """Every active App Center app the operator approved: the listing admins choose from, with who
    develops it (the terms of service ask people to read the third party's agreement first)."""
    return _with_developer(store, [a for a in apps_svc.list_apps(store) if apps_svc.listed(a)])


def _with_developer(store: Store, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    users = directory.get_users(store, [str(a.get("developer_id") or "") for a in records])
    for a in records:
        a["developer_name"] = users.get(str(a.get("developer_id") or ""), {}).get("nickname") or ""
    return records


def center_app(store: Store, client_id: str) -> dict[str, Any]:
    """An App Center app by id; anything else (mini-program, unknown) is the same 404."""
    record = apps_svc.get_app(store, client_id)
    if record is None or record["kind"] != "org_app":
        raise NotFound(f"no App Center app with client id {client_id!r}")
    return _with_developer(store, [record])[0]


def field_rows(
    catalog: Catalog, scopes: list[str], lang: str = "en", released: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The member fields that flow under ``scopes`` (kept to ``released`` when given: an
    installation's choice), in catalog order, with the texts the admin reads."""
    names = catalog.fields_of(scopes)
    if released is not None:
        names &= set(released)
    return [
        {"name": n, "description": f.described(lang, "organization"), "required": f.required}
        for n, f in catalog.fields.items()
        if n in names
    ]


def change_choice(
    store: Store,
    catalog: Catalog,
    oid: str,
    client_id: str,
    scopes: list[str] | None,
    fields: list[str] | None,
    actor: str = "",
) -> dict[str, Any]:
    """Change what an added app receives (scopes and/or member fields) and, when it changed, note it
    in the audit trail (``actor`` empty: the platform)."""
    before = inst_svc.require_installation(store, client_id, oid)
    record = inst_svc.set_choice(store, catalog, client_id, oid, scopes, fields, actor)
    if (record["scopes"], record.get("fields")) != (before["scopes"], before.get("fields")):
        details = {"app": client_id, "scopes": record["scopes"], "fields": inst_svc.released(catalog, record)}
        audit(store, oid, actor or "platform", "installation.updated", details)
    return record


def impact(store: Store, catalog: Catalog, oid: str, client_id: str, action: str) -> dict[str, Any]:
    """What a disable, enable or remove would change: members affected and fields that stop/start."""
    inst = inst_svc.require_installation(store, client_id, oid)
    flowing = bool(inst["enabled"])
    fields = field_rows(catalog, inst["scopes"], released=inst_svc.released(catalog, inst))
    # (action, flowing now) -> what happens to the fields; anything else changes nothing
    change = {("enable", False): "start", ("disable", True): "stop", ("remove", True): "stop"}.get(
        (action, flowing), "none"
    )
    return {
        "action": action,
        "client_id": client_id,
        "org_id": oid,
        "members": departments.covered_count(store, oid, client_id),  # the members it covers
        "enabled": flowing,
        "change": change,
        "fields": [row["name"] for row in fields] if change != "none" else [],
        "field_rows": fields if change != "none" else [],
        "revokes_tokens": action == "remove",
    }


# -- member requests --------------------------------------------------------------------------------


def _decode_request(raw: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(raw)
    return record


def list_requests(store: Store, oid: str, requester: str | None = None) -> list[dict[str, Any]]:
    """Newest first; only one requester's when ``requester`` is given."""
    rows = [_decode_request(v) for v in store.redis.hvals(keys.org_app_requests(oid))]
    if requester is not None:
        rows = [r for r in rows if r["requester"] == requester]
    return sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)


def get_request(store: Store, oid: str, request_id: str) -> dict[str, Any]:
    raw = store.redis.hget(keys.org_app_requests(oid), request_id)
    if raw is None:
        raise NotFound(f"no app request {request_id!r} in this organization")
    return _decode_request(raw)


def request_app(store: Store, oid: str, requester: str, client_id: str, reason: str) -> dict[str, Any]:
    """A member asks the admins to add an App Center app; one pending request per person and app."""
    record = center_app(store, client_id)
    if record["status"] != "active":
        raise Conflict("this app is suspended by the operator")
    if apps_svc.review_of(record) != "approved":
        raise Conflict("this app is not yet approved by the platform operator")
    if inst_svc.get_installation(store, client_id, oid) is not None:
        raise Conflict("this app is already added to the organization")
    for row in list_requests(store, oid, requester):
        if row["client_id"] == client_id and row["status"] == "pending":
            raise Conflict("you already have a pending request for this app")
    now = int(time.time())
    record = {
        "id": new_request_id(),
        "org_id": oid,
        "client_id": client_id,
        "requester": requester,
        "reason": reason,
        "status": "pending",
        "decided_by": None,
        "decision_reason": None,
        "created_at": now,
        "decided_at": None,
    }
    store.redis.hset(keys.org_app_requests(oid), record["id"], json.dumps(record))
    return record


# Decide once (broker/storage/lua/org_request_decide.lua): the request must still be in the expected
# status (two admins at once: one wins).
def _swap(store: Store, oid: str, record: dict[str, Any], expected: str) -> bool:
    done = store.lua("org_request_decide")(
        keys=[keys.org_app_requests(oid)], args=[record["id"], json.dumps(record), expected]
    )
    return int(done) == 1


def decide_request(
    store: Store,
    oid: str,
    request_id: str,
    admin: str,
    approve: bool,
    reason: str,
    scopes: list[str] | None = None,
    fields: list[str] | None = None,
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """Approve (installs the app with ``scopes`` and, checked against ``catalog``, the member
    ``fields``) or deny (a reason is required) a pending request.

    The decision is claimed first (compare-and-set on ``pending``), so two admins deciding at once
    cannot both act; if installing then fails, the claim is released and the request is pending again.
    """
    record = get_request(store, oid, request_id)
    if record["status"] != "pending":
        raise Conflict(f"this request was already {record['status']}")
    if not approve and not reason.strip():
        raise ValidationFailed("some fields are invalid", fields={"reason": ["give the member a reason"]})
    pending = dict(record)
    record.update(
        status="approved" if approve else "denied",
        decided_by=admin,
        decision_reason=reason,
        decided_at=int(time.time()),
    )
    if not _swap(store, oid, record, "pending"):
        raise Conflict("this request was decided by someone else")
    if approve and inst_svc.get_installation(store, record["client_id"], oid) is None:
        try:
            inst_svc.install(store, record["client_id"], oid, scopes, admin, None, fields, catalog)
        except Conflict:
            if inst_svc.get_installation(store, record["client_id"], oid) is None:
                _swap(store, oid, pending, "approved")
                raise
        except Exception:
            _swap(store, oid, pending, "approved")
            raise
    return record


# -- members ----------------------------------------------------------------------------------------

# Adding and removing people from the console (``members.manage``) and from the platform API. The
# org's enabled installations are told (``member.added`` / ``member.removed``, the member named by
# the pairwise id that installation knows), so an app that mirrors the member list stays in step;
# the members API itself follows the change on its next request.


def members(store: Store, oid: str) -> list[dict[str, Any]]:
    """Every member with their role and join order, for the members page."""
    rows = store.redis.zrange(keys.org_members(oid), 0, -1, withscores=True)
    raw = store.redis.hgetall(keys.org_roles(oid))
    return [
        {"user_id": uid, "seq": int(seq), "role": org_policy._parse(raw.get(uid)).role} for uid, seq in rows
    ]


def announce_member(
    store: Store, pairwise_key: str, oid: str, uid: str, event_type: str, covered_by: Iterable[str] = ()
) -> list[str]:
    """Queue ``member.added`` or ``member.removed`` for every enabled installation in the org that
    covers the member: a department-limited one only when named in ``covered_by`` (a new member is
    in no department yet; a removed one was covered by what ``directory.remove_member`` returned)."""
    told = []
    limited = set(departments.limits(store, oid))
    for install in inst_svc.list_org_installations(store, oid):
        if not install.get("enabled"):
            continue
        client_id = install["client_id"]
        if client_id in limited and client_id not in covered_by:
            continue
        with store.redis.pipeline(transaction=True) as pipe:
            events.emit(
                pipe,
                client_id,
                event_type,
                {"org_id": oid, "user_id": pairwise_id(pairwise_key, client_id, uid, oid)},
            )
            pipe.execute()
        told.append(client_id)
    return told


def add_member(store: Store, settings: Settings, oid: str, actor: str, username: str) -> dict[str, Any]:
    """Add an existing platform user (by username) as a plain member; the org's app policy applies
    to their grants at once."""
    user = directory.find_user_by_username(store, username) if username else None
    if user is None or user.get("status") != "active":
        raise ValidationFailed(
            "some fields are invalid", fields={"username": ["no active user with this username"]}
        )
    uid = str(user["id"])
    if directory.is_member(store, oid, uid):
        raise Conflict("this person is already a member of the organization")
    directory.add_member(store, oid, uid)
    announce_member(store, settings.pairwise_key, oid, uid, "member.added")
    enforce_app_policy(store, settings, oid, [uid])
    audit(store, oid, actor, "member.added", {"user": uid})
    return {"user_id": uid, "role": "member"}


def remove_member(
    store: Store, pairwise_key: str, oid: str, actor: str, actor_role: org_policy.Role, uid: str
) -> None:
    """Remove a member. Owners and admins cannot be removed here; a sub-admin only by someone who
    may manage sub-admins (an owner or admin)."""
    target = org_policy.role_of(store, oid, uid)
    if target is None:
        raise NotFound("this person is not a member of the organization")
    if target.role in ("owner", "admin"):
        raise Conflict("owners and admins cannot be removed here")
    if target.role == "sub_admin" and not org_policy.allows(actor_role, org_policy.ADMINS_MANAGE):
        raise Conflict("only an owner or admin can remove a sub-admin")
    covered_by = directory.remove_member(store, oid, uid)
    announce_member(store, pairwise_key, oid, uid, "member.removed", covered_by)
    audit(store, oid, actor, "member.removed", {"user": uid})


# -- app policy -------------------------------------------------------------------------------------


def app_policy(store: Store, oid: str) -> dict[str, Any]:
    org = directory.get_org(store, oid)
    if org is None:
        raise NotFound(f"no organization with id {oid!r}")
    return {
        "allow_member_mini_programs": org["allow_member_mini_programs"],
        "allowed_apps": org["allowed_apps"],
        "blocked_apps": org["blocked_apps"],
    }


def set_app_policy(
    store: Store, settings: Settings, oid: str, actor: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change whether members may add mini-programs and the org's allow and block lists, then make
    every member's existing grants follow it (``enforce_app_policy``); audited."""
    names = ("allow_member_mini_programs", "allowed_apps", "blocked_apps")
    wanted: dict[str, Any] = {k: changes[k] for k in names if k in changes}
    unknown = sorted(
        c
        for c in set(wanted.get("allowed_apps", [])) | set(wanted.get("blocked_apps", []))
        if not apps_svc.get_app(store, c)
    )
    if unknown:
        raise ValidationFailed(
            "some fields are invalid", fields={"apps": [f"no such app: {', '.join(unknown)}"]}
        )
    both = sorted(set(wanted.get("allowed_apps", [])) & set(wanted.get("blocked_apps", [])))
    if both:
        raise ValidationFailed(
            "some fields are invalid", fields={"apps": [f"both allowed and blocked: {', '.join(both)}"]}
        )
    directory.update_org(store, oid, wanted)
    revoked = enforce_app_policy(store, settings, oid)
    audit(
        store,
        oid,
        actor,
        "policy.changed",
        {**{k: v for k, v in app_policy(store, oid).items()}, "grants_ended": len(revoked)},
    )
    return {**app_policy(store, oid), "grants_ended": len(revoked)}


def enforce_app_policy(
    store: Store, settings: Settings, oid: str, uids: list[str] | None = None
) -> list[tuple[str, str]]:
    """End every member's grant to a mini-program their organizations now refuse (the app gets
    ``grant.revoked``, the person a receipt); returns (user id, client id) pairs ended."""
    from broker.consent import grants

    ended = []
    members = uids if uids is not None else store.redis.zrange(keys.org_members(oid), 0, -1)
    for uid in members:
        for client_id in sorted(store.redis.smembers(keys.user_grants(uid))):
            record = apps_svc.get_app(store, client_id)
            if record is None or record.get("kind") != "mini_program":
                continue
            refused = org_policy.refusal_for_member(store, uid, client_id) is not None
            if refused and grants.revoke_grant(store, settings, client_id, uid) is not None:
                ended.append((uid, client_id))
    return ended


# -- sub-admins -------------------------------------------------------------------------------------


def roles(store: Store, oid: str) -> list[dict[str, Any]]:
    """Every member with their role, in join order."""
    members = store.redis.zrange(keys.org_members(oid), 0, -1)
    raw = store.redis.hgetall(keys.org_roles(oid))
    out = []
    for uid in members:
        role = org_policy._parse(raw.get(uid))
        out.append({"user_id": uid, "role": role.role, "permissions": list(role.permissions)})
    return out


# Change a member's role entry only if it is still what we checked (no lost update, no promotion of
# an owner or admin to sub-admin by a stale page): broker/storage/lua/org_set_role.lua.
def set_sub_admin(store: Store, oid: str, uid: str, permissions: list[str]) -> dict[str, Any]:
    """Appoint a member as sub-admin with ``permissions`` (or change them)."""
    perms = list(dict.fromkeys(permissions))
    problems = []
    if not perms:
        problems.append("choose at least one permission")
    unknown = sorted(set(perms) - set(org_policy.GRANTABLE))
    if unknown:
        problems.append(f"unknown permission(s): {', '.join(unknown)}")
    if problems:
        raise ValidationFailed("some fields are invalid", fields={"permissions": problems})
    return _write_role(store, oid, uid, "sub_admin", perms)


def remove_sub_admin(store: Store, oid: str, uid: str) -> dict[str, Any]:
    role = org_policy.role_of(store, oid, uid)
    if role is None or role.role != "sub_admin":
        raise NotFound("this person is not a sub-admin of the organization")
    return _write_role(store, oid, uid, "member", [])


def _write_role(store: Store, oid: str, uid: str, role: str, perms: list[str]) -> dict[str, Any]:
    done = int(
        store.lua("org_set_role")(
            keys=[keys.org_members(oid), keys.org_roles(oid)], args=[uid, org_policy.encode(role, perms)]
        )
    )
    if done == 0:
        raise ValidationFailed(
            "some fields are invalid", fields={"user_id": ["not a member of the organization"]}
        )
    if done == -1:
        raise Conflict("owners and admins cannot be made sub-admins here")
    return {"user_id": uid, "role": role, "permissions": perms}


# -- disband ----------------------------------------------------------------------------------------


def disband(store: Store, oid: str) -> list[str]:
    """Remove every installation (revoking its tokens, announcing it), then delete the org's data.

    Installations go first so no app can read the org after the call returns even if deleting the
    org data is interrupted; a retry finishes the job. Returns the removed client ids.
    """
    org_record(store, oid)
    removed = []
    for client_id in sorted(store.redis.smembers(keys.org_installations(oid))):
        try:
            inst_svc.remove(store, client_id, oid)
        except NotFound:
            store.redis.srem(keys.org_installations(oid), client_id)
            continue
        removed.append(client_id)
    members = store.redis.zrange(keys.org_members(oid), 0, -1)
    doomed = set(store.redis.scan_iter(match=f"{keys.org_tag(oid)}:*", count=500))
    doomed |= {
        keys.org(oid),
        keys.org_members(oid),
        keys.org_roles(oid),
        keys.org_member_seq(oid),
        keys.org_installations(oid),
        keys.org_app_requests(oid),
        keys.org_audit(oid),
    }
    with store.redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.org(oid))  # first: role checks fail from here on
        pipe.delete(*sorted(doomed))
        pipe.execute()
    for uid in members:
        store.redis.srem(keys.user_orgs(uid), oid)
    store.redis.zrem(keys.orgs_all(), oid)
    return removed


def administered_orgs(store: Store, uid: str) -> list[dict[str, Any]]:
    """The person's orgs with their role, for the /console home page."""
    out = []
    for oid in sorted(store.redis.smembers(keys.user_orgs(uid))):
        role = org_policy.role_of(store, oid, uid)
        if role is None:
            continue
        name = store.redis.hget(keys.org(oid), "name") or oid
        out.append({"org_id": oid, "name": name, "role": role.role, "administers": role.administers})
    return out
