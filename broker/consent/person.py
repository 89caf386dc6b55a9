"""What the privacy center knows about one person: plain functions over Redis, no Flask.

The pages (broker.web.privacy.pages) and the JSON API (broker.web.privacy.api) both call these, so the
browser and an API client always see the same facts. Directory data is read straight from the
documented hashes (docs/data-model.md) because the directory service lives in another area.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from broker.apps.registry import get_app, label_drift, received_beyond_label
from broker.config import Settings
from broker.consent import grants, receipts
from broker.core.catalog import Catalog
from broker.core.pairwise import pairwise_id
from broker.directory import departments
from broker.directory import service as directory
from broker.events import outbox as events
from broker.ledger import checkpoints, merkle, reading, storage
from broker.ledger import logs as ledger_logs
from broker.storage import keys
from broker.storage.store import Store

# Above this many unsequenced entries in an app's journal we do not scan it for a count: the
# sequencer drains journals every few seconds, so a long journal is rare and the count is a hint.
PENDING_SCAN_LIMIT = 500
PROFILE_FIELDS_REMOVED = ("username", "nickname", "avatar", "name", "email", "mobile", "password_hash")


def _describe(catalog: Catalog, names: list[str], lang: str) -> list[dict[str, str]]:
    out = []
    for name in names:
        entry = catalog.fields.get(name)
        text = (entry.description.get(lang) or entry.description["en"]) if entry else name
        out.append({"name": name, "description": text})
    return out


def _describe_scopes(catalog: Catalog, names: list[str], lang: str) -> list[dict[str, str]]:
    out = []
    for name in names:
        entry = catalog.scopes.get(name)
        text = (entry.description.get(lang) or entry.description["en"]) if entry else name
        out.append({"name": name, "description": text})
    return out


def nickname(store: Store, uid: str | None) -> str | None:
    if not uid:
        return None
    value: str | None = store.redis.hget(keys.user(uid), "nickname")
    return value


def last_disclosure(store: Store, uid: str, client_id: str) -> float | None:
    """Time of the newest delivered record about ``uid`` for ``client_id``: the person's ledger view
    filtered by the app, newest first, skipping records marked not delivered (among the newest ten;
    older than that it is a hint, like the pending count)."""
    newest = reading.Filters(app=client_id, newest_first=True)
    page = reading.records_for_person(store, uid, newest, None, 10, proofs=False)
    for entry in page.records:
        if entry["delivered"]:
            return float(entry["record"]["time"])
    return None


def pending_disclosures(store: Store, uid: str, client_id: str) -> int | None:
    """Records about ``uid`` still in the app's journal (not yet in the ledger); None when the
    journal is too long to scan cheaply."""
    key = keys.journal(client_id, ledger_logs.log_of(uid, ledger_logs.count(store)))
    if store.redis.xlen(key) > PENDING_SCAN_LIMIT:
        return None
    count = 0
    voided = store.redis.hgetall(keys.journal_voids(client_id))  # refused requests: not disclosures
    for _, entry in store.redis.xrange(key):
        try:
            record = json.loads(entry.get("r", "{}"))
            if record.get("person") == uid and record.get("request_id") not in voided:
                count += 1
        except (ValueError, AttributeError):
            continue
    return count


def app_grants(store: Store, catalog: Catalog, uid: str, lang: str) -> list[dict[str, Any]]:
    """Every app holding a grant from the person, with what it holds and when it last received it."""
    out = []
    for grant in grants.grants_of_user(store, uid):
        client_id = grant["client_id"]
        app = get_app(store, client_id) or {"client_id": client_id, "name": client_id}
        developer_id = app.get("developer_id")
        out.append(
            {
                "client_id": client_id,
                "name": app.get("name") or client_id,
                "kind": app.get("kind"),
                "status": app.get("status"),
                "developer_id": developer_id,
                "developer": nickname(store, developer_id),
                "privacy_policy_url": app.get("privacy_policy_url") or "",
                "label_drift": label_drift(catalog, app) if app.get("scopes") else [],
                "received_beyond_label": received_beyond_label(
                    reading.fields_received(store, client_id, 100), app
                ),
                "grant_id": grant["id"],
                "scopes": _describe_scopes(catalog, grant["scopes"], lang),
                "fields": _describe(catalog, grant["fields"], lang),
                "purpose": grant.get("purpose", ""),
                "granted_at": grant.get("created_at"),
                "updated_at": grant.get("updated_at"),
                "last_disclosure_at": last_disclosure(store, uid, client_id),
                "pending_disclosures": pending_disclosures(store, uid, client_id),
            }
        )
    return out


def org_apps(store: Store, catalog: Catalog, uid: str, lang: str) -> list[dict[str, Any]]:
    """Org apps that receive the person's basic fields through their organizations: read-only,
    with who decided (the installing admin) and when."""
    out = []
    for oid in sorted(store.redis.smembers(keys.user_orgs(uid))):
        org_name = store.redis.hget(keys.org(oid), "name") or oid
        for client_id in sorted(store.redis.smembers(keys.org_installations(oid))):
            inst = store.redis.hgetall(keys.installation(client_id, oid))
            if not inst or not departments.covers(store, oid, client_id, uid):
                continue  # gone, or limited to departments the person is not in
            app = get_app(store, client_id) or {"client_id": client_id, "name": client_id}
            scopes = (inst.get("scopes") or "").split()
            reachable = catalog.fields_of(s for s in scopes if s in catalog.scopes)
            fields = [f for f in catalog.fields if f in reachable]
            installed_by = inst.get("installed_by") or ""
            out.append(
                {
                    "org_id": oid,
                    "org_name": org_name,
                    "client_id": client_id,
                    "name": app.get("name") or client_id,
                    "developer": nickname(store, app.get("developer_id")),
                    "scopes": _describe_scopes(catalog, scopes, lang),
                    "fields": _describe(catalog, fields, lang),
                    "enabled": inst.get("enabled") == "1",
                    "status": app.get("status"),
                    "installed_by": installed_by,
                    "installed_by_name": nickname(store, installed_by),
                    "installed_at": int(inst["created_at"]) if inst.get("created_at", "").isdigit() else None,
                    "last_disclosure_at": last_disclosure(store, uid, client_id),
                }
            )
    return out


# -- disclosures with a server-side verification mark ---------------------------------------------


@dataclass
class VerifiedPage:
    entries: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None
    checkpoint: checkpoints.Checkpoint | None = None
    checkpoint_valid: bool = False


def verified_disclosures(
    store: Store, jwks: dict[str, Any], uid: str, filters: reading.Filters, cursor: str | None, limit: int
) -> VerifiedPage:
    """The person's records, each marked ``verified`` when its leaf (recomputed from the record we
    show) is included, by its proof, in the root of the latest checkpoint whose signature checks."""
    page = reading.records_for_person(store, uid, filters, cursor, limit)
    out = VerifiedPage(next_cursor=page.next_cursor, checkpoint=page.checkpoint)
    roots: dict[str, bytes] = {}  # log -> root of its latest checkpoint whose signature checks
    for log, checkpoint in page.checkpoints.items():
        try:
            checked = checkpoints.verify(checkpoint.jws, jwks)
        except checkpoints.CheckpointInvalid:
            continue
        if checked.root_hash == checkpoint.root_hash:
            roots[log] = checked.root_hash
    out.checkpoint_valid = any(cp is page.checkpoint and lg in roots for lg, cp in page.checkpoints.items())
    for entry in page.records:
        record = entry["record"]
        leaf = merkle.leaf_hash(storage.canonical(record))
        proof = entry.get("inclusion_proof")
        root = roots.get(entry["log"])
        ok = False
        if root is not None and proof is not None and entry.get("tree_size") is not None:
            ok = merkle.verify_inclusion(
                entry["index"], int(entry["tree_size"]), leaf, [checkpoints.unb64(p) for p in proof], root
            )
        out.entries.append({**entry, "verified": ok})
    return out


# -- export -----------------------------------------------------------------------------------------


def _line(kind: str, data: Any) -> str:
    body = {"type": kind, "data": data}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def memberships(store: Store, uid: str) -> list[dict[str, Any]]:
    out = []
    for oid in sorted(store.redis.smembers(keys.user_orgs(uid))):
        raw_role = store.redis.hget(keys.org_roles(oid), uid)
        try:
            role = json.loads(raw_role) if raw_role else {}
        except ValueError:
            role = {}
        out.append(
            {
                "org_id": oid,
                "org_name": store.redis.hget(keys.org(oid), "name"),
                "role": role.get("role"),
                "permissions": role.get("permissions", []),
            }
        )
    return out


def export_lines(store: Store, uid: str) -> Iterator[str]:
    """NDJSON, one object per line ``{"type": ..., "data": ...}``: profile (never the password
    hash), memberships, grants, receipts (the signed JWS and its payload), disclosures.

    Everything but the disclosures is small and read before this returns, and the first page of
    disclosures is probed, so a Redis failure is a clean 503 rather than a cut-off download.
    """
    profile = store.redis.hgetall(keys.user(uid))
    profile.pop("password_hash", None)
    head = [_line("profile", profile)]
    head += [_line("membership", m) for m in memberships(store, uid)]
    head += [_line("grant", g) for g in grants.grants_of_user(store, uid)]
    cursor: str | None = None
    while True:
        items, cursor = receipts.list_receipts(store, uid, limit=100, cursor=cursor)
        for item in items:
            token = receipts.get_receipt(store, uid, item["id"])
            if token is not None:
                payload = receipts.unverified_payload(token)
                head.append(_line("receipt", {"id": item["id"], "jws": token, "payload": payload}))
        if cursor is None:
            break
    reading.records_for_person(store, uid, reading.Filters(), None, 1)

    def lines() -> Iterator[str]:
        yield from head
        for record in reading.iterate(store, "person", uid, reading.Filters()):
            yield _line("disclosure", record)

    return lines()


# -- account deletion -----------------------------------------------------------------------------


@dataclass
class DeletionResult:
    revoked: list[str] = field(default_factory=list)
    notified: list[tuple[str, str | None]] = field(default_factory=list)  # (client id, org id or None)
    orgs_left: list[str] = field(default_factory=list)


def recipients(store: Store, uid: str) -> set[tuple[str, str | None]]:
    """Every (app, org) that ever received or may receive the person's data: apps in the person's
    ledger records (with the org each record was made through), apps with a current grant, and the
    installations of the person's organizations. An org app knows the person by a per-org id."""
    found: set[tuple[str, str | None]] = set()
    for record in reading.iterate(store, "person", uid, reading.Filters()):
        found.add((str(record["app"]), record.get("org") or None))
    for client_id in store.redis.smembers(keys.user_grants(uid)):
        found.add((client_id, None))
    for oid in store.redis.smembers(keys.user_orgs(uid)):
        for client_id in store.redis.smembers(keys.org_installations(oid)):
            found.add((client_id, oid))
    return found


def delete_account(store: Store, settings: Settings, uid: str) -> DeletionResult:
    """Delete the person's account (docs/retention.md says what is kept and why).

    Order matters for a retry after a failure part-way: the directory record is blocked last, so
    until then the person can sign in and delete again; each step is idempotent except that an app
    may receive ``user.deleted`` twice (events carry ids, apps de-duplicate by ``user_id``).
    """
    result = DeletionResult()
    targets = recipients(store, uid)
    # 1. End every grant: tokens deleted, grant.revoked event and a revocation receipt each.
    for client_id in sorted(store.redis.smembers(keys.user_grants(uid))):
        if grants.revoke_grant(store, settings, client_id, uid, ask_deletion=False) is not None:
            result.revoked.append(client_id)
    # 2. Tell every app that ever received their data, by the id that app knows, in the app's slot;
    #    the app's reverse map of that pairwise id is removed in the same MULTI.
    for client_id, oid in sorted(targets, key=lambda t: (t[0], t[1] or "")):
        if not store.redis.exists(keys.app(client_id)):
            continue  # a deleted app (still in the ledger): no one would ever deliver or trim its outbox
        pairwise = pairwise_id(settings.pairwise_key, client_id, uid, oid)
        data: dict[str, Any] = {"user_id": pairwise}
        if oid:
            data["org_id"] = oid
        pipe = store.redis.pipeline(transaction=True)
        pipe.hdel(keys.pairwise_reverse(client_id, oid or "-"), pairwise)
        events.emit(pipe, client_id, "user.deleted", data)
        pipe.execute()
        result.notified.append((client_id, oid))
    # 3-4. Leave every organization and erase the directory record down to a tombstone, so every
    #      session and sign-in is refused; receipts go with it (person's slot).
    result.orgs_left.extend(sorted(store.redis.smembers(keys.user_orgs(uid))))
    directory.delete_user(store, uid)
    store.redis.delete(keys.receipts_index(uid), keys.receipts_docs(uid))
    # 5. A consent given in another tab while steps 1-4 ran would have survived step 1; no new one
    #    can start now (the session is refused), so one more sweep closes the window.
    for client_id in sorted(store.redis.smembers(keys.user_grants(uid))):
        if grants.revoke_grant(store, settings, client_id, uid, ask_deletion=False) is not None:
            result.revoked.append(client_id)
    store.redis.delete(keys.user_grants(uid))
    # Receipts issued by that sweep are not kept either.
    store.redis.delete(keys.receipts_index(uid), keys.receipts_docs(uid))
    return result
