"""Grants: a person's field-level consent to one app (DESIGN "Grant", issue 4 item 3).

A grant stores the fields the person ticked and the scopes that still have at least one granted
field. Re-consent merges into the existing grant and keeps its id (tokens stay bound to it);
revocation deletes the grant and every token issued under it in the same MULTI, so the next request
with any of those tokens is refused (DESIGN invariant 2). Events carry the pairwise id the app knows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis

from broker.apps.registry import get_app
from broker.config import Settings
from broker.consent import deletion, receipts
from broker.core.catalog import Catalog
from broker.core.ids import new_grant_id
from broker.core.pairwise import pairwise_id
from broker.core.records import Grant
from broker.errors import NotFound, ValidationFailed
from broker.events import outbox as events
from broker.storage import keys
from broker.storage.store import Store


def get_grant(store: Store, client_id: str, uid: str) -> dict[str, Any] | None:
    raw = store.redis.hgetall(keys.grant(client_id, uid))
    return Grant.from_hash(raw).public() if raw else None


# Bump when the consent page's wording changes in a way that matters to what people agree to.
CONSENT_TEXT_VERSION = "1"


def consent_version(catalog: Catalog, scopes: Iterable[str], existing: str | None = None) -> str:
    """``<page text version>:<scope>@<digest>,...``: what the person agreed to, per scope (see
    ``Catalog.scope_version``), kept on the grant and on every receipt. Scopes consented to earlier
    keep their recorded digest."""
    versions = scope_versions(existing) if existing else {}
    versions.update({s: catalog.scope_version(s) for s in scopes if s in catalog.scopes})
    return f"{CONSENT_TEXT_VERSION}:" + ",".join(f"{s}@{v}" for s, v in sorted(versions.items()))


def scope_versions(recorded: str) -> dict[str, str]:
    """The per-scope digests of a recorded consent version ({} for one written before they existed)."""
    _, _, body = recorded.partition(":")
    out = {}
    for part in body.split(","):
        scope, at, digest = part.partition("@")
        if at and scope and digest:
            out[scope] = digest
    return out


def changed_scopes(catalog: Catalog, grant: dict[str, Any]) -> list[str]:
    """The grant's scopes whose text changed since the person agreed: per scope digest; a grant
    from before per-scope digests (``<catalog version>:<page text version>``) counts as unchanged
    only if the whole catalog and the page text are still the same."""
    recorded = str(grant.get("consent_version") or "")
    head, _, rest = recorded.partition(":")
    versions = scope_versions(recorded)
    scopes = [s for s in grant.get("scopes") or [] if s in catalog.scopes]
    if not versions:
        return [] if (head == catalog.version and rest == CONSENT_TEXT_VERSION) else scopes
    if head != CONSENT_TEXT_VERSION:
        return scopes
    return [s for s in scopes if versions.get(s) != catalog.scope_version(s)]


def grant_event_data(settings: Settings, client_id: str, uid: str) -> dict[str, Any]:
    """The person as the app sees them: their pairwise id, never the internal uid."""
    return {"user_id": pairwise_id(settings.pairwise_key, client_id, uid)}


def _scopes_with_fields(catalog: Catalog, scopes: Iterable[str], fields: set[str]) -> list[str]:
    """Scopes that still have at least one granted field, in catalog order."""
    wanted = set(scopes)
    return [s for s in catalog.scopes if s in wanted and set(catalog.scopes[s].fields) & fields]


def required_fields(catalog: Catalog, scopes: Iterable[str]) -> set[str]:
    return {f for f in catalog.fields_of(scopes) if catalog.fields[f].required}


def save_consent(
    store: Store,
    settings: Settings,
    catalog: Catalog,
    client_id: str,
    uid: str,
    scopes: Iterable[str],
    fields: Iterable[str],
    purpose: str,
    consent_version: str,
) -> dict[str, Any] | None:
    """Record consent to ``fields`` under ``scopes``, merged with any existing grant.

    Returns the grant, or None when nothing would be granted (every field unticked, no grant yet).
    """
    app_record = get_app(store, client_id)
    if app_record is None:
        raise NotFound(f"no app with client id {client_id!r}")
    scopes = list(dict.fromkeys(scopes))
    fields = set(fields)
    problems: dict[str, list[str]] = {}
    unknown = catalog.unknown_scopes(scopes, "individual")
    if unknown:
        problems["scopes"] = [f"unknown or not individual scope(s): {', '.join(unknown)}"]
    not_requested = sorted(set(scopes) - set(app_record["scopes"]))
    if not_requested:
        problems.setdefault("scopes", []).append(f"not requested by the app: {', '.join(not_requested)}")
    reachable = catalog.fields_of(scopes)
    outside = sorted(fields - reachable)
    if outside:
        problems["fields"] = [f"not fields of the given scopes: {', '.join(outside)}"]
    if problems:
        raise ValidationFailed("the consent does not match the app or the catalog", fields=problems)
    fields |= required_fields(catalog, scopes)

    key = keys.grant(client_id, uid)
    now = int(time.time())
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.hgetall(key)
                existing = Grant.from_hash(raw).public() if raw else None
                merged_fields = fields | set(existing["fields"] if existing else [])
                merged_scopes = _scopes_with_fields(
                    catalog, [*(existing["scopes"] if existing else []), *scopes], merged_fields
                )
                if not merged_scopes:
                    pipe.unwatch()
                    return existing
                ordered_fields = [f for f in catalog.fields if f in merged_fields]
                record: dict[str, Any] = {
                    "id": existing["id"] if existing else new_grant_id(),
                    "client_id": client_id,
                    "user_id": uid,
                    "scopes": merged_scopes,
                    "fields": ordered_fields,
                    "purpose": purpose,
                    "label": [e for e in app_record.get("data_label") or [] if e["field"] in merged_fields],
                    "consent_version": consent_version,
                    "created_at": existing["created_at"] if existing else now,
                    "updated_at": now,
                }
                changed = existing is None or (
                    existing["scopes"] != merged_scopes
                    or existing["fields"] != ordered_fields
                    or existing.get("purpose") != purpose
                    or existing.get("consent_version") != consent_version
                )
                pipe.multi()
                pipe.hset(key, mapping=Grant(**record).to_hash())
                pipe.sadd(keys.app_grants(client_id), uid)
                if existing is None:
                    events.emit(
                        pipe,
                        client_id,
                        "grant.created",
                        {**grant_event_data(settings, client_id, uid), "scopes": merged_scopes},
                    )
                elif existing["scopes"] != merged_scopes or existing["fields"] != ordered_fields:
                    events.emit(
                        pipe,
                        client_id,
                        "grant.updated",
                        {
                            **grant_event_data(settings, client_id, uid),
                            "scopes": merged_scopes,
                            "fields": ordered_fields,
                        },
                    )
                pipe.execute()
                break
            except redis.WatchError:
                continue
    store.redis.sadd(keys.user_grants(uid), client_id)  # index in the person's slot, after
    if existing is None:
        receipts.issue_receipt(store, app_record, record, "granted", settings=settings, catalog=catalog)
    elif changed:
        receipts.issue_receipt(store, app_record, record, "changed", settings=settings, catalog=catalog)
    return record


def revoke_grant(
    store: Store, settings: Settings, client_id: str, uid: str, *, ask_deletion: bool = True
) -> dict[str, Any] | None:
    """End the grant: delete it, which every token under it fails from the same commit (the validity
    rule; their keys expire with the tokens); returns the revoked grant (None: none).

    ``ask_deletion``: also send ``deletion.requested`` for what the app received (account deletion
    does not: its ``user.deleted`` event is itself the request to delete everything)."""
    key = keys.grant(client_id, uid)
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.hgetall(key)
                if not raw:
                    pipe.unwatch()
                    return None
                record = Grant.from_hash(raw).public()
                pipe.multi()
                pipe.delete(key)
                pipe.srem(keys.app_grants(client_id), uid)
                events.emit(
                    pipe,
                    client_id,
                    "grant.revoked",
                    {**grant_event_data(settings, client_id, uid), "scopes": record["scopes"]},
                )
                request = (
                    deletion.queue(
                        pipe, settings.pairwise_key, client_id, uid, record["fields"], "grant_revoked"
                    )
                    if ask_deletion
                    else None
                )
                pipe.execute()
                break
            except redis.WatchError:
                continue
    if request is not None:
        deletion.index_for_person(store, request)
    store.redis.srem(keys.user_grants(uid), client_id)
    app_record = get_app(store, client_id) or {"client_id": client_id}
    receipts.issue_receipt(store, app_record, record, "revoked", settings=settings)
    return record


def revoke_scope(
    store: Store, settings: Settings, catalog: Catalog, client_id: str, uid: str, scope: str
) -> dict[str, Any] | None:
    """Withdraw one scope: the grant keeps only fields still reachable through its other scopes.

    If nothing is left the whole grant is revoked. Returns the grant after the change (None: gone).
    Tokens need no rewrite: effective scopes are the token's scopes intersected with the grant's.
    """
    key = keys.grant(client_id, uid)
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.hgetall(key)
                if not raw:
                    pipe.unwatch()
                    raise NotFound("no grant to this app")
                record = Grant.from_hash(raw).public()
                if scope not in record["scopes"]:
                    pipe.unwatch()
                    raise NotFound(f"the grant does not include scope {scope!r}")
                before_fields = list(record["fields"])
                rest = [s for s in record["scopes"] if s != scope]
                kept_fields = {f for f in record["fields"] if f in catalog.fields_of(rest)}
                kept_scopes = _scopes_with_fields(catalog, rest, kept_fields)
                if not kept_scopes:
                    pipe.unwatch()
                    break
                record.update(
                    scopes=kept_scopes,
                    fields=[f for f in catalog.fields if f in kept_fields],
                    updated_at=int(time.time()),
                )
                dropped = [f for f in before_fields if f not in kept_fields]
                pipe.multi()
                change = Grant(
                    scopes=record["scopes"], fields=record["fields"], updated_at=record["updated_at"]
                )
                pipe.hset(key, mapping=change.to_hash())
                events.emit(
                    pipe,
                    client_id,
                    "grant.updated",
                    {
                        **grant_event_data(settings, client_id, uid),
                        "scopes": record["scopes"],
                        "fields": record["fields"],
                    },
                )
                request = (
                    deletion.queue(pipe, settings.pairwise_key, client_id, uid, dropped, "scope_withdrawn")
                    if dropped
                    else None
                )
                pipe.execute()
                if request is not None:
                    deletion.index_for_person(store, request)
                app_record = get_app(store, client_id) or {"client_id": client_id}
                receipts.issue_receipt(
                    store, app_record, record, "changed", settings=settings, catalog=catalog
                )
                return record
            except redis.WatchError:
                continue
    revoke_grant(store, settings, client_id, uid)
    return None


def grants_of_user(store: Store, uid: str) -> list[dict[str, Any]]:
    out = []
    for client_id in sorted(store.redis.smembers(keys.user_grants(uid))):
        grant = get_grant(store, client_id, uid)
        if grant is not None:
            out.append(grant)
    return out
