"""Which members an installation covers, and telling the apps when that changes.

The departments (broker.directory.departments) decide coverage; this module ties it to
installations: an admin limits an installation to chosen departments (``installation.updated`` with
``departments``), and whenever the tree, a member's departments or the choice changes, each enabled
installation whose coverage changed gets ``member.added`` / ``member.removed`` naming the member by
the pairwise id of that installation. The members API follows on the next request (it pages the
coverage set); the gate is unchanged: coverage only decides which persons a request is about.

Events go to the app's slot after the org-slot change succeeded (two slots cannot share a
transaction on a cluster); a crash between the two loses at most the notification, never the change.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis

from broker.consent import notices
from broker.core.pairwise import pairwise_id
from broker.core.records import Installation
from broker.directory import departments
from broker.directory.departments import Change
from broker.errors import NotFound
from broker.events import outbox as events
from broker.storage import keys
from broker.storage.store import Store


def announce(store: Store, pairwise_key: str, oid: str, changes: Iterable[Change]) -> int:
    """Queue member.added / member.removed for coverage changes of enabled installations; returns
    how many events were queued."""
    sent = 0
    for change in changes:
        enabled = store.redis.hget(keys.installation(change.client_id, oid), "enabled")
        if enabled != "1" or not (change.added or change.removed):
            continue
        with store.redis.pipeline(transaction=True) as pipe:
            for event_type, uids in (("member.added", change.added), ("member.removed", change.removed)):
                for uid in uids:
                    user = pairwise_id(pairwise_key, change.client_id, uid, oid)
                    events.emit(pipe, change.client_id, event_type, {"org_id": oid, "user_id": user})
                    sent += 1
            pipe.execute()
    return sent


def set_departments(
    store: Store, pairwise_key: str, oid: str, client_id: str, dep_ids: list[Any] | None, actor: str = ""
) -> dict[str, Any]:
    """Limit an installation to chosen departments (None: the whole organization). The app gets
    ``installation.updated`` (with ``departments``) and member events for who entered or left; the
    members see the decision in the privacy center (``notices``)."""
    key = keys.installation(client_id, oid)
    if not store.redis.exists(key):
        raise NotFound(f"app {client_id!r} is not installed in organization {oid!r}")
    chosen = departments.check_choice(store, oid, dep_ids)
    before = departments.installation_departments(store, oid, client_id)
    if before == chosen:
        return {"departments": chosen, "changed": False}
    changes = departments.set_coverage(store, oid, client_id, chosen)
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                if not pipe.exists(key):  # removed meanwhile: its coverage goes with it
                    pipe.unwatch()
                    departments.drop_coverage(store, oid, client_id)
                    raise NotFound(f"app {client_id!r} is not installed in organization {oid!r}")
                pipe.multi()
                pipe.hset(key, mapping=Installation(updated_at=int(time.time())).to_hash())
                events.emit(pipe, client_id, "installation.updated", {"org_id": oid, "departments": chosen})
                pipe.execute()
                break
            except redis.WatchError:
                continue
    announce(store, pairwise_key, oid, changes)
    scopes, fields = store.redis.hmget(key, ["scopes", "fields"])
    chosen = fields.split() if fields is not None else None  # the admin's field choice, if any
    notices.record(store, oid, client_id, "updated", actor, (scopes or "").split(), chosen)
    return {"departments": chosen, "changed": True}


def describe(store: Store, oid: str, client_id: str) -> dict[str, Any]:
    """For pages and API bodies: the chosen departments (None: whole org) and how many it covers."""
    return {
        "departments": departments.installation_departments(store, oid, client_id),
        "covered_members": departments.covered_count(store, oid, client_id),
    }


def update_department(
    store: Store, pairwise_key: str, oid: str, dep_id: str, changes: dict[str, Any]
) -> None:
    """Move (``parent``; None: top level) and/or rename (``name``) a department; the move first, so
    a refused move changes nothing. Apps whose coverage changed are told."""
    if "parent" in changes:
        announce(store, pairwise_key, oid, departments.move(store, oid, dep_id, changes["parent"]))
    if "name" in changes:
        departments.rename(store, oid, dep_id, changes["name"])


def delete_department(store: Store, pairwise_key: str, oid: str, dep_id: str) -> None:
    announce(store, pairwise_key, oid, departments.delete(store, oid, dep_id))


def assign_member(store: Store, pairwise_key: str, oid: str, uid: str, dep_ids: list[Any]) -> None:
    """Put a member in exactly these departments; apps whose coverage changed are told."""
    announce(store, pairwise_key, oid, departments.assign(store, oid, uid, dep_ids))


def join_department(store: Store, pairwise_key: str, oid: str, uid: str, dep_id: str) -> None:
    announce(store, pairwise_key, oid, departments.join(store, oid, uid, dep_id))


def leave_department(store: Store, pairwise_key: str, oid: str, uid: str, dep_id: str) -> None:
    announce(store, pairwise_key, oid, departments.leave(store, oid, uid, dep_id))
