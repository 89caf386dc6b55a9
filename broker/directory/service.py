"""The directory: users, organizations and memberships (the platform's truth, mirrored here).

Layout (docs/data-model.md): a user is one hash under ``{u:<uid>}``, an organization and its
member zset / role hash under ``{o:<oid>}``. Writes that must be atomic stay inside one hash tag
(DESIGN invariant 6); the few cross-slot steps (the username index, global listings, the
``user_orgs`` index) run in a fixed order so a crash leaves at worst a stale index entry that the
owning record contradicts, never a record that another one wrongly trusts.

Passwords are argon2 hashes (DESIGN invariant 5); ``get_user`` never returns the hash.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from broker.core import permissions
from broker.core.ids import ORG_ID_RE, USER_ID_RE, USERNAME_RE, new_org_id, new_user_id
from broker.core.records import Membership, Org, User
from broker.directory import departments, sessions
from broker.errors import Conflict, NotFound
from broker.storage import keys
from broker.storage.store import Batch, Store

ROLES = ("owner", "admin", "sub_admin", "member")
PERMISSIONS = permissions.GRANTABLE  # one vocabulary: broker.core.permissions
PROFILE_FIELDS = ("nickname", "avatar", "name", "email", "mobile")
# Never shared with any app, whatever the catalog says; erased when the account is deleted.
PRIVATE_FIELDS = ("name", "email", "mobile")

_hasher = PasswordHasher()
# Verified against for unknown usernames so that both answers take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _now() -> int:
    return int(time.time())


# --- users -----------------------------------------------------------------------------------


def get_user(store: Store, uid: str) -> dict[str, Any] | None:
    """The user record without ``password_hash`` (deleted users included; check ``status``)."""
    if not USER_ID_RE.match(uid):
        return None
    raw = store.redis.hgetall(keys.user(uid))
    return User.from_hash(raw).public() if raw else None


def user_status(store: Store, uid: str) -> str | None:
    """The account's status ("active", "deleted", ...) in one HGET; None when there is no such user."""
    value = store.redis.hget(keys.user(uid), "status")
    return str(value) if value is not None else None


def user_field(store: Store, uid: str, name: str) -> str | None:
    """One public profile field (``nickname``, ``username``...) in one HGET; never the password hash."""
    if name == "password_hash":
        raise ValueError("the password hash is not a profile field")
    value = store.redis.hget(keys.user(uid), name)
    return str(value) if value is not None else None


def get_users(store: Store, uids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Many users in one round trip; missing ids are left out."""
    wanted = [uid for uid in dict.fromkeys(uids) if USER_ID_RE.match(uid)]
    if not wanted:
        return {}
    pipe = store.redis.pipeline(transaction=False)
    for uid in wanted:
        pipe.hgetall(keys.user(uid))
    rows = zip(wanted, pipe.execute(), strict=True)
    return {uid: User.from_hash(raw).public() for uid, raw in rows if raw}


def user_id_for(store: Store, username: str) -> str | None:
    uid = store.redis.get(keys.username_index(username))
    return str(uid) if uid else None


def find_user_by_username(store: Store, username: str) -> dict[str, Any] | None:
    uid = user_id_for(store, username)
    if uid is None:
        return None
    user = get_user(store, uid)
    if not user or user.get("status") != "active":
        return None
    # An index entry left behind by an interrupted rename names a user who is now called otherwise.
    return user if str(user.get("username", "")).lower() == username.lower() else None


def verify_password(store: Store, username: str, password: str) -> str | None:
    """The user id when the password is right; None otherwise, in about the same time either way."""
    uid = user_id_for(store, username) if USERNAME_RE.match(username) else None
    stored = store.redis.hmget(keys.user(uid), "password_hash", "status") if uid else [None, None]
    password_hash, status = stored[0], stored[1]
    if not password_hash or status != "active":
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        return None
    try:
        _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    assert uid is not None
    if _hasher.check_needs_rehash(password_hash):
        store.redis.hset(keys.user(uid), "password_hash", _hasher.hash(password))
    return uid


def user_records(data: dict[str, Any], uid: str, now: int) -> dict[str, str]:
    """The hash fields for a new user from validated input (``password`` hashed here)."""
    user = User(
        id=uid,
        username=data["username"],
        nickname=data.get("nickname") or data["username"],
        avatar=data.get("avatar") or "",
        name=data.get("name") or "",
        email=data.get("email") or "",
        mobile=data.get("mobile") or "",
        password_hash=data.get("password_hash")
        or (hash_password(data["password"]) if data.get("password") else ""),
        status="active",
        created_at=now,
        updated_at=now,
    )
    return user.to_hash()


def claim_usernames(store: Store, claims: dict[str, str]) -> list[str]:
    """Claim each username for its user id (SET NX); all or none. Returns the names already taken."""
    pipe = store.redis.pipeline(transaction=False)
    for username, uid in claims.items():
        pipe.set(keys.username_index(username), uid, nx=True)
    results = pipe.execute()
    taken = [name for name, ok in zip(claims, results, strict=True) if not ok]
    if taken:
        release = store.batch()
        for (name, uid), ok in zip(claims.items(), results, strict=True):
            if ok:
                _release_username(store, release, name, uid)
        release.execute()
    return taken


def _release_username(store: Store, batch: Batch, username: str, uid: str) -> None:
    # Only if it still points at this user (a compare-and-delete on one key).
    batch.script(store.lua("delete_if_equals"), [keys.username_index(username)], [uid])


def write_users(store: Store, records: list[dict[str, str]]) -> None:
    """Store already-validated user records whose usernames are claimed."""
    pipe = store.redis.pipeline(transaction=False)
    for record in records:
        pipe.hset(keys.user(record["id"]), mapping=record)
        pipe.zadd(keys.users_all(), {record["id"]: int(record["created_at"])})
    pipe.execute()


def create_user(store: Store, data: dict[str, Any], *, now: int | None = None) -> dict[str, Any]:
    """Create a user from validated data; Conflict when the username (or given id) is taken."""
    now = _now() if now is None else now
    uid = data.get("id") or new_user_id()
    if store.redis.exists(keys.user(uid)):
        raise Conflict(f"user {uid} already exists")
    if claim_usernames(store, {data["username"]: uid}):
        raise Conflict(f"username {data['username']!r} is already taken", field="username")
    record = user_records(data, uid, now)
    write_users(store, [record])
    return User.from_hash(record).public()


def update_user(
    store: Store,
    uid: str,
    changes: dict[str, Any],
    *,
    now: int | None = None,
    keep_session: str | None = None,
    ended: list[Any] | None = None,
) -> dict[str, Any]:
    """Apply validated changes (profile fields, ``username``, ``password``); NotFound / Conflict.

    A new password ends every session of the person but ``keep_session`` (the one that changed it,
    named as ``sessions.digest_of`` does); the ended sessions are added to ``ended`` when given
    (for back-channel logout)."""
    now = _now() if now is None else now
    current = get_user(store, uid)
    if current is None or current.get("status") != "active":
        raise NotFound(f"no user {uid}")
    fields: dict[str, Any] = {k: (changes[k] or "") for k in PROFILE_FIELDS if k in changes}
    if changes.get("password"):
        fields["password_hash"] = hash_password(changes["password"])
    new_name: str = changes.get("username") or ""
    old_name: str = current["username"]
    if new_name and new_name != old_name:
        if new_name.lower() != old_name.lower() and claim_usernames(store, {new_name: uid}):
            raise Conflict(f"username {new_name!r} is already taken", field="username")
        fields["username"] = new_name
    fields["updated_at"] = now
    renamed = bool(new_name) and new_name.lower() != old_name.lower()  # else only the case changed
    try:
        store.redis.hset(keys.user(uid), mapping=User(**fields).to_hash())
    except BaseException:
        if renamed:  # the new name was claimed for nothing: give it back (all or nothing)
            with contextlib.suppress(Exception):
                store.batch().script(
                    store.lua("delete_if_equals"), [keys.username_index(new_name)], [uid]
                ).execute()
        raise
    if renamed:
        release = store.batch()
        _release_username(store, release, old_name, uid)
        release.execute()
    if changes.get("password"):
        gone = sessions.end_all(store, uid, keep=keep_session)
        if ended is not None:
            ended.extend(gone)
    updated = get_user(store, uid)
    assert updated is not None
    return updated


def delete_user(store: Store, uid: str, *, now: int | None = None) -> None:
    """Erase a person from the directory: profile, password, username, memberships.

    Only a tombstone stays (``id``, ``status=deleted``, ``deleted_at``) so sessions bound to the id
    fail at once. Grants, tokens and ``user.deleted`` events are the privacy area's
    (``broker.consent.person.delete_account``), which every account deletion goes through.
    """
    now = _now() if now is None else now
    current = store.redis.hgetall(keys.user(uid)) if USER_ID_RE.match(uid) else {}
    if not current or current.get("status") != "active":
        raise NotFound(f"no user {uid}")
    pipe = store.redis.pipeline(transaction=True)
    pipe.delete(keys.user(uid))
    pipe.hset(keys.user(uid), mapping=User(id=uid, status="deleted", deleted_at=str(now)).to_hash())
    pipe.execute()
    for oid in store.redis.smembers(keys.user_orgs(uid)):
        _remove_member(store, oid, uid)
    tail = store.batch()
    _release_username(store, tail, current["username"], uid)
    tail.command("delete", keys.user_orgs(uid))
    tail.command("zrem", keys.users_all(), uid)
    tail.execute()
    sessions.end_all(store, uid)  # the tombstone already refuses them; this frees their keys now


# --- organizations ---------------------------------------------------------------------------


def get_org(store: Store, oid: str) -> dict[str, Any] | None:
    if not ORG_ID_RE.match(oid):
        return None
    raw = store.redis.hgetall(keys.org(oid))
    return Org.from_hash(raw).public() if raw else None


def org_names(store: Store, oids: Iterable[str]) -> dict[str, str]:
    """Organization display names in one pipelined read; an org without a name keeps its id."""
    wanted = list(dict.fromkeys(oids))
    if not wanted:
        return {}
    pipe = store.redis.pipeline(transaction=False)
    for oid in wanted:
        pipe.hget(keys.org(oid), "name")
    return {oid: name or oid for oid, name in zip(wanted, pipe.execute(), strict=True)}


def org_record(data: dict[str, Any], oid: str, now: int) -> dict[str, str]:
    """The hash fields for a new organization from validated input."""
    org = Org(
        id=oid,
        name=data["name"],
        allow_member_mini_programs=bool(data.get("allow_member_mini_programs", True)),
        created_at=now,
        updated_at=now,
    )
    return org.to_hash()


def write_orgs(store: Store, records: list[dict[str, str]]) -> None:
    pipe = store.redis.pipeline(transaction=False)
    for record in records:
        pipe.hset(keys.org(record["id"]), mapping=record)
        pipe.zadd(keys.orgs_all(), {record["id"]: int(record["created_at"])})
    pipe.execute()


def create_org(store: Store, data: dict[str, Any], *, now: int | None = None) -> dict[str, Any]:
    now = _now() if now is None else now
    oid = data.get("id") or new_org_id()
    record = org_record(data, oid, now)
    if not store.redis.hsetnx(keys.org(oid), "id", oid):
        raise Conflict(f"organization {oid} already exists")
    write_orgs(store, [record])
    return Org.from_hash(record).public()


def update_org(store: Store, oid: str, changes: dict[str, Any], *, now: int | None = None) -> dict[str, Any]:
    now = _now() if now is None else now
    if get_org(store, oid) is None:
        raise NotFound(f"no organization {oid}")
    change = Org(
        name=changes.get("name"),
        allow_member_mini_programs=(
            bool(changes["allow_member_mini_programs"]) if "allow_member_mini_programs" in changes else None
        ),
        allowed_apps=sorted(set(changes["allowed_apps"])) if "allowed_apps" in changes else None,
        blocked_apps=sorted(set(changes["blocked_apps"])) if "blocked_apps" in changes else None,
        updated_at=now,
    )
    store.redis.hset(keys.org(oid), mapping=change.to_hash())
    updated = get_org(store, oid)
    assert updated is not None
    return updated


def delete_org(store: Store, oid: str) -> None:
    """Disband an organization: its record, members and roles go; members' indexes follow."""
    if get_org(store, oid) is None:
        raise NotFound(f"no organization {oid}")
    members = store.redis.zrange(keys.org_members(oid), 0, -1)
    limited = store.redis.hkeys(keys.org_coverage_config(oid))
    pipe = store.redis.pipeline(transaction=True)
    pipe.delete(keys.org(oid), keys.org_members(oid), keys.org_roles(oid), keys.org_member_seq(oid))
    pipe.delete(keys.org_departments(oid), keys.org_member_departments(oid), keys.org_coverage_config(oid))
    for client_id in limited:
        pipe.delete(keys.org_coverage(oid, client_id))
    pipe.execute()
    tail = store.redis.pipeline(transaction=False)
    for uid in members:
        tail.srem(keys.user_orgs(uid), oid)
    tail.zrem(keys.orgs_all(), oid)
    tail.execute()


# --- memberships -----------------------------------------------------------------------------


def role_value(role: str, permissions: Iterable[str] = ()) -> str:
    """The stored role JSON of a membership (only a sub-admin holds permissions)."""
    return Membership.of("", role, permissions).role_json()


def member_role(store: Store, oid: str, uid: str) -> dict[str, Any] | None:
    """``{"role": ..., "permissions": [...]}`` or None when ``uid`` is not a member."""
    raw = store.redis.hget(keys.org_roles(oid), uid)
    return Membership.from_hash({uid: raw}).public() if raw else None


def member_roles(store: Store, oid: str, uids: list[str]) -> list[dict[str, Any] | None]:
    """``member_role`` for many members in one pipelined read, in the order given."""
    if not uids:
        return []
    pipe = store.redis.pipeline(transaction=False)
    for uid in uids:
        pipe.hget(keys.org_roles(oid), uid)
    rows = zip(uids, pipe.execute(), strict=True)
    return [Membership.from_hash({uid: raw}).public() if raw else None for uid, raw in rows]


def is_member(store: Store, oid: str, uid: str) -> bool:
    return store.redis.zscore(keys.org_members(oid), uid) is not None


def list_members(
    store: Store, oid: str, after: int | None, limit: int
) -> tuple[list[tuple[int, str]], int | None]:
    """Members in join order after the sequence ``after``; the cursor is the last sequence or None."""
    low = f"({after}" if after is not None else "-inf"
    rows = store.redis.zrangebyscore(
        keys.org_members(oid), low, "+inf", start=0, num=limit + 1, withscores=True
    )
    page = [(int(score), str(uid)) for uid, score in rows[:limit]]
    cursor = page[-1][0] if len(rows) > limit and page else None
    return page, cursor


def add_member(
    store: Store, oid: str, uid: str, role: str = "member", permissions: Iterable[str] = ()
) -> bool:
    """Add (or re-role) a member; True when newly added. NotFound for a missing user or org."""
    if get_org(store, oid) is None:
        raise NotFound(f"no organization {oid}")
    user = get_user(store, uid)
    if user is None or user.get("status") != "active":
        raise NotFound(f"no user {uid}")
    added = _add_member_raw(store, oid, uid, role_value(role, permissions))
    store.redis.sadd(keys.user_orgs(uid), oid)
    return added


def _add_member_raw(store: Store, oid: str, uid: str, role_json: str) -> bool:
    script = store.lua("org_add_member")
    result = script(
        keys=[keys.org_members(oid), keys.org_roles(oid), keys.org_member_seq(oid)], args=[uid, role_json]
    )
    return bool(result)


def add_members_bulk(store: Store, items: list[tuple[str, str, str]]) -> None:
    """(oid, uid, role_json) already validated: one pipelined script call each, then the indexes."""
    script = store.lua("org_add_member")
    batch = store.batch()
    for oid, uid, role_json in items:
        batch.script(
            script, [keys.org_members(oid), keys.org_roles(oid), keys.org_member_seq(oid)], [uid, role_json]
        )
    batch.execute()
    index = store.redis.pipeline(transaction=False)
    for oid, uid, _ in items:
        index.sadd(keys.user_orgs(uid), oid)
    index.execute()


def set_role(store: Store, oid: str, uid: str, role: str, permissions: Iterable[str] = ()) -> dict[str, Any]:
    if not is_member(store, oid, uid):
        raise NotFound(f"user {uid} is not a member of {oid}")
    store.redis.hset(keys.org_roles(oid), mapping=Membership.of(uid, role, permissions).to_hash())
    found = member_role(store, oid, uid)
    assert found is not None
    return found


def remove_member(store: Store, oid: str, uid: str) -> list[str]:
    """Remove a member; returns the department-limited installations that covered them."""
    if not is_member(store, oid, uid):
        raise NotFound(f"user {uid} is not a member of {oid}")
    return _remove_member(store, oid, uid)


def _remove_member(store: Store, oid: str, uid: str) -> list[str]:
    # membership, role, departments and coverage in one script (org_departments.lua)
    covered_by = departments.remove_member(store, oid, uid)
    store.redis.srem(keys.user_orgs(uid), oid)
    return covered_by


def user_org_ids(store: Store, uid: str) -> list[str]:
    return sorted(store.redis.smembers(keys.user_orgs(uid)))
