"""Public ledger endpoints (anyone can verify) and the person's own disclosures.

Public, under ``/ledger/v1``: the Ed25519 keys, the list of logs (``/ledger/v1/logs``, each with its
latest checkpoint) and, per log (``/ledger/v1/logs/<log>/...``), its signed checkpoints, consistency
proofs between tree sizes, and leaf hashes with inclusion proofs. The URLs of releases before 0.3
without a log (``/ledger/v1/checkpoints``, ``/consistency``, ``/leaves/<i>``) serve the frozen
legacy log of those releases. Records themselves are personal and are never public: only their
owner (``/privacy/v1/disclosures``, signed-in session) reads them.
Errors on these routes are always JSON problem documents, whatever the Accept header says.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from flask import Blueprint, Response, request, stream_with_context

from broker import errors
from broker.ledger import checkpoints, reading, storage
from broker.ledger import logs as ledger_logs
from broker.ledger.checkpoints import b64
from broker.web.interactions.session import login_required
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import TEXT, Content, Lines, Reply, documented
from broker.web.shared.responses import NO_STORE, no_store

bp = Blueprint("ledger", __name__)
log = logging.getLogger("broker.ledger")

MAX_CHECKPOINT_PAGE = 100
_CORRUPT = {500: "The stored tree is inconsistent (operator: `broker ledger verify`)"}
# The JSON page, or with ?format= the export of every matching record (views using listing()).
LISTING: dict[str, Content] = {
    "application/x-ndjson": Lines(rs.DisclosureRecordSchema),
    "text/csv": TEXT,
}


def _int_arg(name: str, *, default: int | None = None, lo: int = 0) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise errors.ValidationFailed(f"{name} is required", fields={name: ["required"]})
        return default
    if not re.fullmatch(r"\d{1,15}", raw) or int(raw) < lo:
        raise errors.ValidationFailed(
            f"{name} is not valid", fields={name: [f"expected a whole number >= {lo}"]}
        )
    return int(raw)


def _log(log: str) -> str:
    """A log named in a URL: one of the ledger's logs or ``legacy``; anything else is a 404."""
    store = web.store()
    if log != ledger_logs.LEGACY and log not in ledger_logs.names(store):
        raise errors.NotFound(f"no log {log!r} (see /ledger/v1/logs)")
    return log


def _latest(log: str) -> checkpoints.Checkpoint:
    found = checkpoints.latest(web.store(), log)
    if found is None:
        raise errors.NotFound("no checkpoint has been signed yet")
    return found


@bp.get("/ledger/v1/keys")
@documented(rs.JwksSchema)
def ledger_keys() -> Reply:
    """The Ed25519 public keys (JWK ``alg`` EdDSA) checkpoints and consent receipts are signed with,
    retired ones included. The only place they are published: /oauth/jwks holds id_token keys only."""
    return checkpoints.public_jwks(web.keyring()), 200, {"Cache-Control": "public, max-age=300"}


@bp.get("/ledger/v1/logs")
@documented(rs.LogListSchema)
def list_logs() -> Reply:
    """Every log of the ledger (the legacy log of earlier releases first, if it holds records), each
    with its tree size and latest signed checkpoint. A person's records are all in the log their
    user id hashes to (docs/data-model.md)."""
    store = web.store()
    names = ledger_logs.all_logs(store)
    latest = checkpoints.latest_of(store, names)
    sizes = storage.sizes(store, names)
    return {
        "logs": [
            {
                "log": log,
                "tree_size": sizes[log],
                "checkpoint": latest[log].as_json() if log in latest else None,
            }
            for log in names
        ]
    }


@bp.get("/ledger/v1/logs/<log>/checkpoints/latest")
@documented(rs.CheckpointSchema, errors={404: "No such log, or no checkpoint signed yet"})
def log_latest_checkpoint(log: str) -> Reply:
    """The log's newest signed checkpoint."""
    return _latest(_log(log)).as_json()


@bp.get("/ledger/v1/checkpoints/latest")
@documented(rs.CheckpointSchema, errors={404: "No checkpoint has been signed yet"})
def latest_checkpoint() -> Reply:
    """The legacy log's newest signed checkpoint (releases before 0.3; see /ledger/v1/logs)."""
    return _latest(ledger_logs.LEGACY).as_json()


def _checkpoints(log: str) -> Reply:
    start = _int_arg("start", default=0)
    limit = _int_arg("limit", default=MAX_CHECKPOINT_PAGE, lo=1)
    if limit > MAX_CHECKPOINT_PAGE:
        raise errors.ValidationFailed(
            "limit is out of range", fields={"limit": [f"expected 1 to {MAX_CHECKPOINT_PAGE}"]}
        )
    store = web.store()
    total = checkpoints.count(store, log)
    items = checkpoints.page(store, log, start, limit)
    nxt = start + len(items) if start + len(items) < total else None
    return {"checkpoints": [c.as_json() for c in items], "next": nxt, "total": total}


@bp.get("/ledger/v1/logs/<log>/checkpoints")
@documented(
    rs.CheckpointPageSchema,
    query=rs.CheckpointsQuery,
    summary="A log's signed checkpoints, oldest first",
    errors={404: "No such log"},
)
def log_checkpoints(log: str) -> Reply:
    """Oldest first from ``start`` (a position in the list); ``next`` is the start of the next page."""
    return _checkpoints(_log(log))


@bp.get("/ledger/v1/checkpoints")
@documented(rs.CheckpointPageSchema, query=rs.CheckpointsQuery, summary="Signed checkpoints, oldest first")
def list_checkpoints() -> Reply:
    """The legacy log's checkpoints (releases before 0.3; see /ledger/v1/logs)."""
    return _checkpoints(ledger_logs.LEGACY)


def _consistency(log: str) -> Reply:
    first = _int_arg("first", lo=1)
    second = _int_arg("second", lo=1)
    if first > second:
        raise errors.ValidationFailed("first is larger than second", fields={"first": ["must be <= second"]})
    store = web.store()
    size = storage.size(store, log)
    if second > size:
        raise errors.ValidationFailed(
            "second is beyond the log", fields={"second": [f"the log has {size} leaves"]}
        )
    proof = storage.RedisTree(store, log).consistency_proof(first, second)
    return {"log": log, "first": first, "second": second, "consistency_proof": [b64(h) for h in proof]}


@bp.get("/ledger/v1/logs/<log>/consistency")
@documented(rs.ConsistencyProofSchema, query=rs.ConsistencyQuery, errors={404: "No such log", **_CORRUPT})
def log_consistency(log: str) -> Reply:
    """RFC 9162 2.1.4 proof that the log's tree of ``second`` leaves extends its tree of ``first``."""
    return _consistency(_log(log))


@bp.get("/ledger/v1/consistency")
@documented(rs.ConsistencyProofSchema, query=rs.ConsistencyQuery, errors=_CORRUPT)
def consistency() -> Reply:
    """A consistency proof in the legacy log (releases before 0.3; see /ledger/v1/logs)."""
    return _consistency(ledger_logs.LEGACY)


def _leaf(log: str, index: int) -> Reply:
    store = web.store()
    checkpoint = checkpoints.latest(store, log)
    if request.args.get("tree_size"):
        tree_size = _int_arg("tree_size", lo=1)
    elif checkpoint is None or checkpoint.tree_size == 0:
        raise errors.NotFound("no checkpoint has been signed yet")
    else:
        tree_size = checkpoint.tree_size
    if tree_size > storage.size(store, log):
        raise errors.ValidationFailed("tree_size is beyond the log", fields={"tree_size": ["beyond the log"]})
    if index >= tree_size:
        raise errors.NotFound(f"no leaf {index} in the tree of {tree_size} leaves")
    tree = storage.RedisTree(store, log)
    return {
        "log": log,
        "index": index,
        "tree_size": tree_size,
        "leaf_hash": b64(tree.leaf(index)),
        "inclusion_proof": [b64(h) for h in tree.inclusion_proof(index, tree_size)],
        "checkpoint": checkpoint.as_json() if checkpoint and checkpoint.tree_size == tree_size else None,
    }


@bp.get("/ledger/v1/logs/<log>/leaves/<int:index>")
@documented(
    rs.LeafSchema,
    query=rs.LeafQuery,
    errors={404: "No such log, no checkpoint yet, or no such leaf in that tree", **_CORRUPT},
)
def log_leaf(log: str, index: int) -> Reply:
    """A leaf hash of the log (never the record) with its inclusion proof against a tree size
    (default: the log's latest checkpoint's)."""
    return _leaf(_log(log), index)


@bp.get("/ledger/v1/leaves/<int:index>")
@documented(
    rs.LeafSchema,
    query=rs.LeafQuery,
    errors={404: "No checkpoint yet, or no such leaf in that tree", **_CORRUPT},
)
def leaf(index: int) -> Reply:
    """A leaf of the legacy log (releases before 0.3; see /ledger/v1/logs)."""
    return _leaf(ledger_logs.LEGACY, index)


def listing(view: str, subject: str, *, person_filter: bool, apps: list[str] | None = None) -> Reply:
    """One ledger view as JSON pages (with proofs) or, with ``?format=ndjson|csv``, a streamed export.

    Shared by the person (``/privacy/v1/disclosures``), the org admin and the developer; the caller
    has already checked who may read ``subject``. Filters: since, until, app (and person where the
    view spans several people); cursor pagination with limit 1-100.
    """
    settings = web.settings()
    if apps is not None:
        # A developer's view (``apps``: theirs): people are named by the pairwise id each app knows,
        # and ``person`` filters by that id (issue 14, item 1).
        args = request.args.to_dict()
        given = args.pop("person", None)
        filters = reading.parse_filters(args, person_filter=person_filter)
        if given is not None:
            scope = [filters.app] if filters.app else apps
            found = reading.pairwise_person(web.store(), settings.pairwise_key, scope, given[:64])
            filters = replace(filters, person=found or "usr_0000000000000000")  # unknown: nothing
    else:
        filters = reading.parse_filters(request.args, person_filter=person_filter)
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "ndjson", "csv"):
        raise errors.ValidationFailed(
            "format is not supported", fields={"format": ["expected json, ndjson or csv"]}
        )
    store = web.store()
    reader = reading.VIEWS[view]
    if fmt == "json":
        limit = reading.parse_limit(request.args.get("limit"))
        page = reader(store, subject, filters, request.args.get("cursor") or None, limit)
        body = page.as_json()
        if apps is not None:
            for entry in body["records"]:
                entry["record"] = reading.as_seen_by_app(entry["record"], settings.pairwise_key)
        return body, 200, NO_STORE
    else:
        reader(store, subject, filters, None, 1)  # fail now, before streaming starts
        records = reading.iterate(store, view, subject, filters)
        if apps is not None:
            records = (reading.as_seen_by_app(r, settings.pairwise_key) for r in records)
        columns = reading.APP_CSV_COLUMNS if apps is not None else reading.CSV_COLUMNS
        lines = reading.ndjson_lines(records) if fmt == "ndjson" else reading.csv_lines(records, columns)
        mimetype = "application/x-ndjson" if fmt == "ndjson" else "text/csv"
        response = Response(stream_with_context(lines), mimetype=mimetype)
        response.headers["Content-Disposition"] = f'attachment; filename="disclosures.{fmt}"'
        return no_store(response)


@bp.get("/privacy/v1/disclosures")
@documented(rs.DisclosurePageSchema, media=LISTING, query=rs.DisclosureQuery, errors=_CORRUPT)
def my_disclosures() -> Reply:
    """The signed-in person's disclosures with proofs; ``?format=ndjson|csv`` streams an export."""
    uid = login_required("sign in to read your disclosures")
    return listing("person", uid, person_filter=False)
