"""Members are told: when an admin adds, switches, narrows or removes an app that receives members'
data, every member sees it in the privacy center (who decided, which fields, when).

One stream per organization (``keys.org_notices``, the org's slot) rather than one entry per member:
a decision is one write whatever the organization's size, and a member's notices are read by merging
the streams of their organizations. What a member has seen is one stream id per organization
(``keys.user_notices_seen``). The stream is capped at ``MAXLEN`` entries, so it never grows without
bound; older decisions stay in the organization's audit trail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from broker.core.catalog import Catalog
from broker.storage import keys
from broker.storage.store import Store

MAXLEN = 1000
WHATS = ("installed", "enabled", "disabled", "updated", "removed")
PLATFORM = "platform"  # the actor when the platform API made the change


def record(
    store: Store,
    org_id: str,
    client_id: str,
    what: str,
    actor: str,
    scopes: Iterable[str] = (),
    fields: Iterable[str] | None = None,
    departments: Iterable[str] | bool | None = True,
) -> None:
    """Note a decision about ``client_id`` in the org (after it succeeded): the scopes and, when the
    admin chose them one by one, the member fields it concerns (None: every field of the scopes), and
    the departments the installation covers (``True``: read them now; None: the whole org), so only
    the members it concerns are told."""
    if departments is True:
        from broker.directory import departments as dept_svc

        departments = dept_svc.installation_departments(store, org_id, client_id)
    if what not in WHATS:
        raise ValueError(f"unknown notice {what!r}")
    entry = {
        "what": what,
        "app": client_id,
        "scopes": list(scopes),
        "who": actor or PLATFORM,
        "when": int(time.time()),
    }
    if fields is not None:
        entry["fields"] = list(fields)
    if isinstance(departments, Iterable):
        entry["departments"] = list(departments)
    store.redis.xadd(
        keys.org_notices(org_id),
        {"n": json.dumps(entry, separators=(",", ":"))},
        maxlen=MAXLEN,
        approximate=True,
    )


def for_person(
    store: Store, catalog: Catalog, uid: str, lang: str = "en", limit: int = 50
) -> list[dict[str, Any]]:
    """The newest notices of the person's organizations (newest first), each with the org's and
    app's names, who decided, the member fields concerned and whether the person has seen it."""
    from broker.apps.registry import get_app
    from broker.directory import service as directory

    orgs = sorted(store.redis.smembers(keys.user_orgs(uid)))
    seen = store.redis.hgetall(keys.user_notices_seen(uid))
    mine: dict[str, set[str]] = {}  # org -> the member's departments and those above them
    rows: list[dict[str, Any]] = []
    for oid in orgs:
        name = store.redis.hget(keys.org(oid), "name")
        if name is None:
            continue
        for stream_id, fields in store.redis.xrevrange(keys.org_notices(oid), count=limit):
            try:
                entry = json.loads(fields["n"])
            except (KeyError, ValueError):
                continue
            if not _affects(store, oid, uid, entry, mine):
                continue
            entry.update(id=stream_id, org_id=oid, org_name=name, new=_newer(stream_id, seen.get(oid)))
            rows.append(entry)
    rows.sort(key=lambda r: (r["when"], r["id"]), reverse=True)
    rows = rows[:limit]
    actors = directory.get_users(store, [r["who"] for r in rows if r["who"] != PLATFORM])
    for r in rows:
        app = get_app(store, r["app"]) or {}
        r["app_name"] = app.get("name") or r["app"]
        r["who_name"] = "" if r["who"] == PLATFORM else (actors.get(r["who"], {}).get("nickname") or "")
        scopes = [s for s in r.get("scopes") or [] if s in catalog.scopes]
        reachable = catalog.fields_of(scopes)
        if isinstance(r.get("fields"), list):  # chosen one by one (issue 13, item 2)
            reachable &= set(r["fields"]) | catalog.required_fields(scopes)
        r["fields"] = [
            {"name": f, "description": catalog.fields[f].described(lang)}
            for f in catalog.fields
            if f in reachable
        ]
    return rows


def _affects(store: Store, oid: str, uid: str, entry: dict[str, Any], mine: dict[str, set[str]]) -> bool:
    """Whether a decision concerns this member: one about an app limited to departments she is not in
    (nor in one of their sub-departments) is not hers to read: the app receives nothing about her."""
    limited = entry.get("departments")
    if not isinstance(limited, list):
        return True  # the whole organization
    if oid not in mine:
        from broker.directory import departments

        tree = departments.tree(store, oid)
        found: set[str] = set()
        for dep in departments.member_departments(store, oid, uid):
            while dep and dep not in found:  # the department and every one above it
                found.add(dep)
                dep = tree.get(dep, {}).get("parent", "")
        mine[oid] = found
    return bool(mine[oid] & set(limited))


def mark_seen(store: Store, uid: str, notices: list[dict[str, Any]]) -> None:
    """Remember the newest notice of each organization as seen."""
    newest: dict[str, str] = {}
    for n in notices:
        if _newer(n["id"], newest.get(n["org_id"])):
            newest[n["org_id"]] = n["id"]
    if newest:
        store.redis.hset(keys.user_notices_seen(uid), mapping=newest)


def _newer(stream_id: str, than: str | None) -> bool:
    if not than:
        return True
    a, b = (tuple(int(p) for p in s.split("-")) for s in (stream_id, than))
    return a > b
