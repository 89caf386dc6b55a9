"""Reading the ledger: a person's own records, an org's, an app's, a developer's.

Every view is a sorted set of leaf indexes (score: record time, member: zero-padded index, so
ties break by index) written by the sequencer, one per view and filter combination, so a page is
a ZCOUNT/ZRANK to find where to start plus one ZRANGE: no scanning, whatever the filters.
Cursors are opaque (base64url JSON of the last (time, index) seen and a tag of the view) and a
cursor from another view is refused. Each record comes with its RFC 9162 inclusion proof against
the latest signed checkpoint, so the reader can check it was not edited.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker.core import cursors
from broker.core.ids import CLIENT_ID_RE, USER_ID_RE
from broker.core.records import DisclosureRecord
from broker.errors import ValidationFailed
from broker.ledger import checkpoints, storage
from broker.ledger.checkpoints import b64
from broker.storage import keys
from broker.storage.store import Store

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
EXPORT_PAGE = 100
_USER_ID = USER_ID_RE
_CLIENT_ID = CLIENT_ID_RE
CSV_COLUMNS = (
    "index", "id", "time", "app", "developer", "audience", "org", "person", "grant", "fields",
    "endpoint", "request_id", "catalog_version",
)  # fmt: skip


@dataclass(frozen=True)
class Filters:
    since: float | None = None
    until: float | None = None
    app: str | None = None
    person: str | None = None


@dataclass
class Page:
    records: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None
    checkpoint: checkpoints.Checkpoint | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "next_cursor": self.next_cursor,
            "checkpoint": self.checkpoint.as_json() if self.checkpoint else None,
        }


# -- parsing request parameters ------------------------------------------------------------------


def parse_time(name: str, raw: str) -> float:
    """Unix seconds or ISO-8601 (a time without an offset is UTC)."""
    value = raw.strip()
    try:
        if re.fullmatch(r"\d{1,12}(\.\d+)?", value):
            return float(value)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            f"{name} is not a time", fields={name: ["expected unix seconds or an ISO-8601 date-time"]}
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"\d{1,4}", raw.strip()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed("limit is out of range", fields={"limit": [f"expected 1 to {MAX_LIMIT}"]})
    return int(raw)


def parse_filters(args: Mapping[str, str], *, person_filter: bool = True) -> Filters:
    """Filters from query parameters; anything malformed is a 400 naming the parameter."""
    since = parse_time("since", args["since"]) if args.get("since") else None
    until = parse_time("until", args["until"]) if args.get("until") else None
    if since is not None and until is not None and until < since:
        raise ValidationFailed("until is before since", fields={"until": ["must not be before since"]})
    app = args.get("app") or None
    if app is not None and not _CLIENT_ID.fullmatch(app):
        raise ValidationFailed("app is not a client id", fields={"app": ["expected a client id (app_...)"]})
    person = args.get("person") or None
    if person is not None:
        if not person_filter:
            raise ValidationFailed("person filter not allowed here", fields={"person": ["not allowed here"]})
        if not _USER_ID.fullmatch(person):
            raise ValidationFailed(
                "person is not a user id", fields={"person": ["expected a user id (usr_...)"]}
            )
    return Filters(since, until, app, person)


def _view_tag(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _encode_cursor(key: str, score: float, mem: str) -> str:
    return cursors.encode(json.dumps({"v": _view_tag(key), "t": score, "m": mem}, separators=(",", ":")))


def _decode_cursor(key: str, cursor: str) -> tuple[float, str]:
    bad = ValidationFailed("cursor is invalid", fields={"cursor": ["not a cursor from this listing"]})
    try:
        data = json.loads(cursors.decode(cursor))
        score, mem = float(data["t"]), str(data["m"])
        if data["v"] != _view_tag(key) or not mem.isdigit() or len(mem) != storage.INDEX_WIDTH:
            raise bad
        return score, mem
    except (ValueError, TypeError, KeyError):
        raise bad from None


# -- reading ---------------------------------------------------------------------------------------


def _read(store: Store, key: str, filters: Filters, cursor: str | None, limit: int, *, proofs: bool) -> Page:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed("limit is out of range", fields={"limit": [f"expected 1 to {MAX_LIMIT}"]})
    r = store.redis
    start = int(r.zcount(key, "-inf", f"({filters.since!r}")) if filters.since is not None else 0
    if cursor:
        score, mem = _decode_cursor(key, cursor)
        rank = r.zrank(key, mem)
        if rank is None or r.zscore(key, mem) != score:  # that record was pruned since: find its place
            ties = r.zrangebyscore(key, score, score)
            rank = int(r.zcount(key, "-inf", f"({score!r}")) + sum(1 for m in ties if m <= mem) - 1
        start = max(start, int(rank) + 1)
    end = (
        int(r.zcount(key, "-inf", repr(filters.until))) - 1
        if filters.until is not None
        else int(r.zcard(key)) - 1
    )
    stop = min(end, start + limit)  # one more than the page, to know whether there is a next page
    rows = r.zrange(key, start, stop, withscores=True) if stop >= start else []
    more = len(rows) > limit
    rows = rows[:limit]
    page = Page()
    if more and rows:
        page.next_cursor = _encode_cursor(key, rows[-1][1], rows[-1][0])
    if not rows:
        page.checkpoint = checkpoints.latest(store) if proofs else None
        return page
    bodies = r.hmget(keys.ledger_records(), [str(int(m)) for m, _ in rows])
    tree = storage.RedisTree(store)
    checkpoint = checkpoints.latest(store) if proofs else None
    page.checkpoint = checkpoint
    wanted = [int(m) for (m, _), body in zip(rows, bodies, strict=True) if body is not None]
    if checkpoint is not None:
        tree.prefetch_proofs(wanted, checkpoint.tree_size)
    tree.prefetch({(0, i) for i in wanted})
    records = [
        DisclosureRecord.from_hash({"r": body}).public() if body is not None else None for body in bodies
    ]
    ids = [str(rec.get("id", "")) for rec in records if isinstance(rec, dict)]
    corrected_by = dict(zip(ids, r.hmget(keys.ledger_voided(), ids), strict=True)) if ids else {}
    for (mem, _), record in zip(rows, records, strict=True):
        if record is None:  # pruned while we read
            continue
        index = int(mem)
        entry: dict[str, Any] = {
            "index": index,
            "record": record,
            "leaf_hash": b64(tree.leaf(index)),
            **delivery(record, corrected_by.get(str(record.get("id", "")))),
        }
        if proofs:
            if checkpoint is not None and index < checkpoint.tree_size:
                entry["inclusion_proof"] = [b64(h) for h in tree.inclusion_proof(index, checkpoint.tree_size)]
                entry["tree_size"] = checkpoint.tree_size
            else:  # sequenced after the latest checkpoint; the next one (seconds away) covers it
                entry["inclusion_proof"] = None
                entry["tree_size"] = None
        page.records.append(entry)
    return page


def delivery(record: dict[str, Any], corrected_by: str | None) -> dict[str, Any]:
    """Whether a record is a disclosure that happened. A correction record (``corrects``) and a record
    a correction points at (``ledger_voided``) were not delivered: the request was refused."""
    if isinstance(record.get("corrects"), str):
        return {"delivered": False, "correction": True, "corrected_by": None}
    if corrected_by is not None or record.get("delivered") is False:
        return {
            "delivered": False,
            "correction": False,
            "corrected_by": int(corrected_by) if corrected_by and corrected_by.isdigit() else None,
        }
    return {"delivered": True, "correction": False, "corrected_by": None}


def records_for_person(
    store: Store, uid: str, filters: Filters, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> Page:
    """Every disclosure about one person, each with its inclusion proof."""
    dims = {"person": uid} | ({"app": filters.app} if filters.app else {})
    return _read(store, keys.ledger_index(**dims), filters, cursor, limit, proofs=True)


def records_for_org(
    store: Store, oid: str, filters: Filters, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> Page:
    """Records about the org's members made through the org's installations (audience organization)."""
    dims = {"org": oid} | _optional(filters)
    return _read(store, keys.ledger_index(**dims), filters, cursor, limit, proofs=True)


def records_for_app(
    store: Store, client_id: str, filters: Filters, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> Page:
    dims = {"app": client_id} | ({"person": filters.person} if filters.person else {})
    if filters.app and filters.app != client_id:
        return Page(checkpoint=checkpoints.latest(store))
    return _read(store, keys.ledger_index(**dims), filters, cursor, limit, proofs=True)


def records_for_developer(
    store: Store, developer_id: str, filters: Filters, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> Page:
    dims = {"developer": developer_id} | _optional(filters)
    return _read(store, keys.ledger_index(**dims), filters, cursor, limit, proofs=True)


def _optional(filters: Filters) -> dict[str, str]:
    dims = {}
    if filters.app:
        dims["app"] = filters.app
    if filters.person:
        dims["person"] = filters.person
    return dims


VIEWS = {
    "person": records_for_person,
    "org": records_for_org,
    "app": records_for_app,
    "developer": records_for_developer,
}


def iterate(store: Store, view: str, subject: str, filters: Filters) -> Iterator[dict[str, Any]]:
    """Every record of a view, page by page (for exports)."""
    reader = VIEWS[view]
    cursor: str | None = None
    while True:
        page = reader(store, subject, filters, cursor, EXPORT_PAGE)
        for entry in page.records:
            yield entry["record"]
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def ndjson_lines(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    for rec in records:
        yield json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def csv_lines(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for rec in records:
        buffer.seek(0)
        buffer.truncate()
        row = [rec.get(c) for c in CSV_COLUMNS]
        row[CSV_COLUMNS.index("fields")] = " ".join(rec.get("fields") or [])
        writer.writerow(["" if v is None else _csv_safe(str(v)) for v in row])
        yield buffer.getvalue()


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in values that come from apps."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
