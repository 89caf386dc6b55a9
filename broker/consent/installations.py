"""Installations: an App Center app (``org_app``) added to one organization by its admin.

The admin picks scopes (a subset of what the app requests) and, within them, the member fields the
app receives (``fields``; the gate releases no other, gate_disclose.lua), and can switch the
installation off and on or remove it. An installation stored without ``fields`` (added before the
field choice, or through a caller that chose none) releases every field of its scopes. Each change
and its event are one MULTI in the app's slot; the org's index (``org_installations``, another slot)
is written afterwards. Disabling takes effect at once because token checks read ``enabled`` on every
request (DESIGN invariant 2).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis

from broker.apps.registry import require_app, review_of
from broker.consent import notices, org_policy
from broker.core.catalog import Catalog
from broker.core.ids import ORG_ID_RE, new_installation_id
from broker.core.records import Installation
from broker.directory import departments as dept_svc
from broker.errors import Conflict, NotFound, ValidationFailed
from broker.events import outbox as events
from broker.storage import keys
from broker.storage.store import Store


def get_installation(store: Store, client_id: str, org_id: str) -> dict[str, Any] | None:
    raw = store.redis.hgetall(keys.installation(client_id, org_id))
    return Installation.from_hash(raw).public() if raw else None


def require_installation(store: Store, client_id: str, org_id: str) -> dict[str, Any]:
    record = get_installation(store, client_id, org_id)
    if record is None:
        raise NotFound(f"app {client_id!r} is not installed in organization {org_id!r}")
    return record


def _require_org(store: Store, org_id: str) -> None:
    if not ORG_ID_RE.match(org_id) or not store.redis.exists(keys.org(org_id)):
        raise NotFound(f"no organization with id {org_id!r}")


def _check_scopes(scopes: list[str], allowed: list[str]) -> None:
    problems = []
    if not scopes:
        problems.append("choose at least one scope")
    extra = sorted(set(scopes) - set(allowed))
    if extra:
        problems.append(f"not requested by the app: {', '.join(extra)}")
    if problems:
        raise ValidationFailed("some fields are invalid", fields={"scopes": problems})


def check_fields(catalog: Catalog, scopes: list[str], fields: Iterable[str]) -> list[str]:
    """The admin's field choice within ``scopes``, with the fields that always flow (the app's id for
    each member) added, in catalog order. Refused (400 naming ``fields``): a field none of the
    chosen scopes shares, and a chosen scope left with none of its fields."""
    given = list(dict.fromkeys(fields))
    reachable = catalog.fields_of(scopes)
    chosen = (set(given) & reachable) | catalog.required_fields(scopes)
    problems = []
    extra = [f for f in given if f not in reachable]
    if extra:
        problems.append(f"not shared by the chosen scopes: {', '.join(extra)}")
    empty = [s for s in scopes if s in catalog.scopes and not chosen & set(catalog.scopes[s].fields)]
    if empty:
        problems.append(f"choose at least one field of {', '.join(empty)}, or leave the scope out")
    if problems:
        raise ValidationFailed("some fields are invalid", fields={"fields": problems})
    return [f for f in catalog.fields if f in chosen]


def released(catalog: Catalog, record: dict[str, Any]) -> list[str]:
    """The member fields the installation releases, in catalog order (the gate's rule for a request
    carrying every scope: the chosen fields, or every field of its scopes when none were chosen)."""
    scopes = list(record.get("scopes") or [])
    reachable = catalog.fields_of(scopes)
    if record.get("fields") is not None:
        reachable &= set(record["fields"]) | catalog.required_fields(scopes)
    return [f for f in catalog.fields if f in reachable]


def installed_client_ids(store: Store, org_id: str) -> set[str]:
    """The client ids installed in an organization (enabled or not), from its index: one SMEMBERS."""
    return set(store.redis.smembers(keys.org_installations(org_id)))


def list_org_installations(store: Store, org_id: str) -> list[dict[str, Any]]:
    _require_org(store, org_id)
    out = []
    for client_id in sorted(store.redis.smembers(keys.org_installations(org_id))):
        record = get_installation(store, client_id, org_id)
        if record is not None:
            out.append(record)
    return out


def install(
    store: Store,
    client_id: str,
    org_id: str,
    scopes: Iterable[str] | None = None,
    installed_by: str = "",
    departments: list[Any] | None = None,
    fields: Iterable[str] | None = None,
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """Add ``client_id`` to ``org_id`` with ``scopes`` (default: everything the app requests),
    covering the whole organization or, given ``departments``, only the members of those and their
    sub-departments (set first, so the installation never covers more than chosen). ``fields``
    (checked against ``catalog``): the member fields it receives; None: every field of the scopes."""
    app_record = require_app(store, client_id)
    if app_record["kind"] != "org_app":
        raise Conflict("only an org_app can be installed in an organization")
    if review_of(app_record) != "approved":
        raise Conflict("this app is not yet approved by the platform operator")
    _require_org(store, org_id)
    if org_policy.blocked_in_org(store, org_id, client_id):
        raise Conflict("this organization blocks this app")
    chosen = list(dict.fromkeys(scopes)) if scopes is not None else list(app_record["scopes"])
    _check_scopes(chosen, app_record["scopes"])
    chosen_fields = None
    if fields is not None:
        if catalog is None:
            raise TypeError("a field choice needs the catalog")
        chosen_fields = check_fields(catalog, chosen, fields)
    key = keys.installation(client_id, org_id)
    limited = dept_svc.check_choice(store, org_id, departments)
    if limited is not None:
        if store.redis.exists(key):
            raise Conflict(f"app {client_id!r} is already installed in organization {org_id!r}")
        dept_svc.set_coverage(store, org_id, client_id, limited)
    try:
        return _install(store, client_id, org_id, chosen, chosen_fields, installed_by, key, limited)
    except BaseException:
        if limited is not None and not store.redis.exists(key):
            dept_svc.drop_coverage(store, org_id, client_id)
        raise


def _install(
    store: Store,
    client_id: str,
    org_id: str,
    chosen: list[str],
    chosen_fields: list[str] | None,
    installed_by: str,
    key: str,
    limited: list[str] | None,
) -> dict[str, Any]:
    now = int(time.time())
    record = Installation(
        id=new_installation_id(),
        client_id=client_id,
        org_id=org_id,
        scopes=chosen,
        fields=chosen_fields,
        enabled=True,
        installed_by=installed_by or "",
        created_at=now,
        updated_at=now,
    )
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                if pipe.exists(key):
                    pipe.unwatch()
                    raise Conflict(f"app {client_id!r} is already installed in organization {org_id!r}")
                pipe.multi()
                pipe.hset(key, mapping=record.to_hash())
                pipe.sadd(keys.app_installations(client_id), org_id)
                events.emit(
                    pipe,
                    client_id,
                    "installation.installed",
                    {"org_id": org_id, "scopes": chosen, "fields": chosen_fields, "departments": limited},
                )
                pipe.execute()
                break
            except redis.WatchError:
                continue
    store.redis.sadd(keys.org_installations(org_id), client_id)
    notices.record(store, org_id, client_id, "installed", installed_by, chosen, chosen_fields)
    return record.public()


def _set_enabled(store: Store, client_id: str, org_id: str, enabled: bool, actor: str) -> dict[str, Any]:
    key = keys.installation(client_id, org_id)
    changed = False
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                current = pipe.hget(key, "enabled")
                if current is None:
                    pipe.unwatch()
                    raise NotFound(f"app {client_id!r} is not installed in organization {org_id!r}")
                if (current == "1") == enabled:
                    pipe.unwatch()
                    break  # already so: nothing changes, no event
                pipe.multi()
                pipe.hset(key, mapping=Installation(enabled=enabled, updated_at=int(time.time())).to_hash())
                events.emit(
                    pipe,
                    client_id,
                    "installation.enabled" if enabled else "installation.disabled",
                    {"org_id": org_id},
                )
                pipe.execute()
                changed = True
                break
            except redis.WatchError:
                continue
    record = require_installation(store, client_id, org_id)
    if changed:
        what = "enabled" if enabled else "disabled"
        notices.record(store, org_id, client_id, what, actor, record["scopes"], record.get("fields"))
    return record


def disable(store: Store, client_id: str, org_id: str, actor: str = "") -> dict[str, Any]:
    return _set_enabled(store, client_id, org_id, False, actor)


def enable(store: Store, client_id: str, org_id: str, actor: str = "") -> dict[str, Any]:
    return _set_enabled(store, client_id, org_id, True, actor)


def set_choice(
    store: Store,
    catalog: Catalog,
    client_id: str,
    org_id: str,
    scopes: Iterable[str] | None = None,
    fields: Iterable[str] | None = None,
    actor: str = "",
) -> dict[str, Any]:
    """Change the admin's chosen scopes and/or member fields; tokens narrow at once (the gate reads
    the installation on every request). Scopes without fields keep the fields chosen before for the
    scopes that stay and bring every field of a scope added; an installation that never had a field
    choice keeps releasing every field of its scopes. The app is told (``installation.updated``)
    and the members see it in the privacy center."""
    app_record = require_app(store, client_id)
    key = keys.installation(client_id, org_id)
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.hmget(key, ["scopes", "fields"])
                if raw[0] is None:
                    pipe.unwatch()
                    raise NotFound(f"app {client_id!r} is not installed in organization {org_id!r}")
                before = raw[0].split()
                before_fields = raw[1].split() if raw[1] is not None else None
                chosen = list(dict.fromkeys(scopes)) if scopes is not None else before
                _check_scopes(chosen, app_record["scopes"])
                if fields is not None:
                    chosen_fields: list[str] | None = check_fields(catalog, chosen, fields)
                elif before_fields is not None:
                    added = catalog.fields_of(set(chosen) - set(before))
                    kept = set(before_fields) & catalog.fields_of(chosen)
                    chosen_fields = check_fields(catalog, chosen, kept | added)
                else:
                    chosen_fields = None
                if chosen == before and chosen_fields == before_fields:
                    pipe.unwatch()
                    return require_installation(store, client_id, org_id)  # no change, no event
                pipe.multi()
                update = Installation(scopes=chosen, fields=chosen_fields, updated_at=int(time.time()))
                pipe.hset(key, mapping=update.to_hash())
                payload = {"org_id": org_id, "scopes": chosen, "fields": released(catalog, update.public())}
                events.emit(pipe, client_id, "installation.updated", payload)
                pipe.execute()
                break
            except redis.WatchError:
                continue
    notices.record(store, org_id, client_id, "updated", actor, chosen, chosen_fields)
    return require_installation(store, client_id, org_id)


def remove(store: Store, client_id: str, org_id: str, actor: str = "") -> dict[str, Any]:
    """Delete the installation: every token issued under it fails the validity rule from the same
    commit (its keys expire with the tokens)."""
    key = keys.installation(client_id, org_id)
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.hgetall(key)
                if not raw:
                    pipe.unwatch()
                    raise NotFound(f"app {client_id!r} is not installed in organization {org_id!r}")
                record = Installation.from_hash(raw).public()
                pipe.multi()
                pipe.delete(key)
                pipe.srem(keys.app_installations(client_id), org_id)
                events.emit(pipe, client_id, "installation.removed", {"org_id": org_id})
                pipe.execute()
                break
            except redis.WatchError:
                continue
    store.redis.srem(keys.org_installations(org_id), client_id)
    limited = dept_svc.installation_departments(store, org_id, client_id)  # who it concerned
    dept_svc.drop_coverage(store, org_id, client_id)
    if store.redis.exists(keys.org(org_id)):  # a disbanded org has no members left to tell
        scopes = record.get("scopes") or []
        notices.record(store, org_id, client_id, "removed", actor, scopes, record.get("fields"), limited)
    return record


def public_view(record: dict[str, Any], catalog: Catalog | None = None) -> dict[str, Any]:
    """The installation as the APIs show it; with the catalog, ``fields`` is what it releases."""
    names = ["id", "client_id", "org_id", "scopes", "fields", "enabled", "installed_by"]
    names += ["created_at", "updated_at"]
    out = {name: record.get(name) for name in names}
    if catalog is not None and record:
        out["fields"] = released(catalog, record)
    return out
