"""Reading the ledger: a person's own records, an org's, an app's, a developer's.

Every view is, in each log, a sorted set of leaf indexes (score: record time, member: zero-padded
index) written by that log's sequencer, one per view and filter combination. A person's records
are all in one log (plus the legacy log of earlier releases), so a person's page reads one or two
sorted sets; an app's, org's or developer's page reads the view in every log in one pipeline
(ZRANGEBYSCORE from the cursor, at most a page from each) and merges them in (time, log, index)
order (``order=newest``: backwards, newest first): no scanning, whatever the filters. Cursors are
opaque (base64url JSON of the last (time, log, index) seen and a tag of the view and its order) and a
cursor from another view is refused. Each
record names its log and comes with its RFC 9162 inclusion proof against that log's latest signed
checkpoint, so the reader can check it was not edited.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker.core import cursors
from broker.core.ids import CLIENT_ID_RE, USER_ID_RE
from broker.core.pairwise import pairwise_id
from broker.core.records import DisclosureRecord
from broker.errors import ValidationFailed
from broker.ledger import checkpoints, storage, views
from broker.ledger import logs as ledger_logs
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
    newest_first: bool = False  # ``order=newest``: the views read backwards in time


@dataclass
class Page:
    records: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None
    # the person's log's latest checkpoint for a person's view (one log), else None
    checkpoint: checkpoints.Checkpoint | None = None
    # log -> latest checkpoint, for every log of the view (each entry names its log)
    checkpoints: dict[str, checkpoints.Checkpoint] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "next_cursor": self.next_cursor,
            "checkpoint": self.checkpoint.as_json() if self.checkpoint else None,
            "checkpoints": {log: cp.as_json() for log, cp in sorted(self.checkpoints.items())},
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
    order = args.get("order") or "oldest"
    if order not in ("oldest", "newest"):
        raise ValidationFailed("order is not supported", fields={"order": ["expected oldest or newest"]})
    return Filters(since, until, app, person, order == "newest")


def _view_tag(view: str) -> str:
    return hashlib.sha256(view.encode()).hexdigest()[:12]


def _rank(log: str) -> int:
    """Order of the logs in a merged listing: the legacy log first, then 00, 01, ..."""
    return -1 if log == ledger_logs.LEGACY else int(log)


def _encode_cursor(view: str, score: float, log: str, mem: str) -> str:
    data = {"v": _view_tag(view), "t": score, "l": log, "m": mem}
    return cursors.encode(json.dumps(data, separators=(",", ":")))


def _decode_cursor(view: str, logs: list[str], cursor: str) -> tuple[float, str, str]:
    bad = ValidationFailed("cursor is invalid", fields={"cursor": ["not a cursor from this listing"]})
    try:
        data = json.loads(cursors.decode(cursor))
        score, log, mem = float(data["t"]), str(data["l"]), str(data["m"])
        if data["v"] != _view_tag(view) or not mem.isdigit() or len(mem) != storage.INDEX_WIDTH:
            raise bad
        if log not in logs:
            raise bad
        return score, log, mem
    except (ValueError, TypeError, KeyError, AttributeError):
        raise bad from None


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One reader view of one log (``views``), with the app and organization codes it is filtered by
    (empty: any)."""

    log: str
    key: str
    apps: tuple[bytes, ...] = ()
    orgs: tuple[bytes, ...] = ()


SCAN_BUDGET = 5000  # entries a filtered read looks at per view and page before it answers


def _after(cursor: tuple[float, int, int] | None, log: str) -> tuple[str, str]:
    """The (time, index) bound of the cursor (time, log rank, index) within ``log``'s view: rows
    of earlier logs at the cursor's time come before it in a listing, of later logs after it."""
    if cursor is None:
        return "", ""
    score, rank, index = cursor
    own = _rank(log)
    if own == rank:
        return repr(score), str(index)
    # forwards a row of a later log is after the cursor from the cursor's time on, one of an earlier
    # log only after that time; backwards the same rows come before it: the same bound either way
    return repr(score), str(-1 if own > rank else views.MAX_INDEX + 1)


def _read(
    store: Store,
    sources: list[Source],
    logs: list[str],
    filters: Filters,
    cursor: str | None,
    limit: int,
    *,
    proofs: bool,
    view: str,
    wanted: dict[str, str | set[str]] | None = None,
) -> Page:
    """One page of a listing over ``sources`` (views of ``logs``): each view is read from the cursor
    on by ``ledger_view.lua`` (one round trip on a single Redis), the rows are merged in (ledger
    time, log, index) order. ``view`` names the listing for its cursors; ``wanted`` is what every
    record must carry (field -> value or set of values), checked on the bodies (a view filtered
    by code may, once in billions, hold another app's or organization's record)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed("limit is out of range", fields={"limit": [f"expected 1 to {MAX_LIMIT}"]})
    backwards = filters.newest_first
    if backwards:
        view += "|order=newest"  # a cursor of one order is refused by the other
    r = store.redis
    after: tuple[float, int, int] | None = None
    if cursor:
        score, cursor_log, mem = _decode_cursor(view, logs, cursor)
        inside = (
            filters.until is None or score <= filters.until
            if backwards
            else (filters.since is None or score >= filters.since)
        )
        if inside:
            after = (score, _rank(cursor_log), int(mem))
    batch = store.batch()
    script = store.lua("ledger_view")
    for src in sources:
        after_t, after_i = _after(after, src.log)
        batch.script(
            script,
            [src.key],
            [views.width(src.key), "b" if backwards else "f",
             "" if filters.since is None else repr(filters.since),
             "" if filters.until is None else repr(filters.until), after_t, after_i, limit + 1,
             b"".join(src.apps), b"".join(src.orgs), max(SCAN_BUDGET, limit + 1)],
        )  # fmt: skip
    rows: list[tuple[float, int, int, str]] = []  # (ledger time, log rank, index, log)
    stops: list[tuple[float, int, int, str]] = []
    for src, reply in zip(sources, batch.execute(), strict=True):
        *flat, stop = reply
        rows += [(float(flat[k + 1]), _rank(src.log), int(flat[k]), src.log) for k in range(0, len(flat), 2)]
        if stop:
            t, i = str(stop).split(" ")
            stops.append((float(t), _rank(src.log), int(i), src.log))
    rows.sort(reverse=backwards)
    bound = (max(stops) if backwards else min(stops)) if stops else None
    if bound is not None:  # a filtered view stopped looking there: nothing past it is known yet
        rows = [row for row in rows if (row[:3] >= bound[:3] if backwards else row[:3] <= bound[:3])]
    page = Page()
    more = len(rows) > limit
    rows = rows[:limit]
    latest = checkpoints.latest_of(store, logs) if proofs else {}
    page.checkpoints = latest
    if len(logs) == 1 or (logs[0] == ledger_logs.LEGACY and len(logs) == 2):
        page.checkpoint = latest.get(logs[-1])  # a person's view: their log's
    last = rows[-1] if more else bound
    if last is not None:
        page.next_cursor = _encode_cursor(view, last[0], last[3], storage.member(last[2]))
    used = sorted({row[3] for row in rows}, key=_rank)
    if not rows:
        return page
    bodies = storage.read_bodies_of(store, [(log, i) for _, _, i, log in rows])
    trees = {log: storage.RedisTree(store, log) for log in used}
    for log in used:
        present = [i for (lg, i), body in bodies.items() if lg == log and body is not None]
        if log in latest:
            trees[log].prefetch_proofs(present, latest[log].tree_size)
        trees[log].prefetch({(0, i) for i in present})
    records = {
        at: DisclosureRecord.from_hash({"r": body}).public() if body is not None else None
        for at, body in bodies.items()
    }
    pipe = r.pipeline(transaction=False)
    asked: list[tuple[str, list[str]]] = []
    for log in used:
        ids = [str(rec.get("id", "")) for (lg, _), rec in records.items() if lg == log and rec is not None]
        if ids:
            pipe.hmget(keys.ledger_voided(log), ids)
            asked.append((log, ids))
    corrected_by: dict[tuple[str, str], str | None] = {}
    for (log, ids), got in zip(asked, pipe.execute() if asked else [], strict=True):
        corrected_by.update({(log, i): c for i, c in zip(ids, got, strict=True)})
    for _, _, index, log in rows:
        record = records.get((log, index))
        if record is None or not _carries(record, wanted):  # pruned while we read; another's code
            continue
        tree = trees[log]
        entry: dict[str, Any] = {
            "log": log,
            "index": index,
            "record": record,
            "leaf_hash": b64(tree.leaf(index)),
            **delivery(record, corrected_by.get((log, str(record.get("id", ""))))),
        }
        if proofs:
            checkpoint = latest.get(log)
            if checkpoint is not None and index < checkpoint.tree_size:
                entry["inclusion_proof"] = [b64(h) for h in tree.inclusion_proof(index, checkpoint.tree_size)]
                entry["tree_size"] = checkpoint.tree_size
            else:  # sequenced after the latest checkpoint; the next one (seconds away) covers it
                entry["inclusion_proof"] = None
                entry["tree_size"] = None
        page.records.append(entry)
    return page


def _carries(record: dict[str, Any], wanted: dict[str, str | set[str]] | None) -> bool:
    for name, value in (wanted or {}).items():
        got = record.get(name)
        if (got not in value) if isinstance(value, set) else (got != value):
            return False
    return True


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


def person_logs(store: Store, uid: str) -> list[str]:
    """The logs that may hold records about ``uid``: the legacy log (if any) and the person's log."""
    legacy = [ledger_logs.LEGACY] if ledger_logs.legacy_size(store) else []
    return [*legacy, ledger_logs.log_of(uid, ledger_logs.count(store))]


def _name(dims: dict[str, str]) -> str:
    return "|".join(f"{k}={v}" for k, v in sorted(dims.items()))


def _person_sources(
    store: Store, uid: str, apps: Iterable[str] = (), org: str | None = None
) -> tuple[list[Source], list[str]]:
    """The person's view in each log that may hold their records, filtered by app and organization."""
    logs = person_logs(store, uid)
    codes = tuple(views.code(a) for a in apps)
    orgs = (views.code(org),) if org else ()
    return [Source(log, keys.ledger_view(log, person=uid), codes, orgs) for log in logs], logs


def records_for_person(
    store: Store,
    uid: str,
    filters: Filters,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    *,
    proofs: bool = True,
) -> Page:
    """Every disclosure about one person (all in the person's log), each with its inclusion proof."""
    dims = {"person": uid} | ({"app": filters.app} if filters.app else {})
    sources, logs = _person_sources(store, uid, [filters.app] if filters.app else [])
    wanted: dict[str, str | set[str]] = {"person": uid}
    if filters.app:
        wanted["app"] = filters.app
    return _read(store, sources, logs, filters, cursor, limit, proofs=proofs, view=_name(dims), wanted=wanted)


def records_for_org(
    store: Store, oid: str, filters: Filters, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> Page:
    """Records about the org's members made through the org's installations (audience organization)."""
    dims = {"org": oid} | _optional(filters)
    wanted: dict[str, str | set[str]] = {"org": oid, "audience": "organization", **_optional(filters)}
    if filters.person:
        sources, logs = _person_sources(store, filters.person, [filters.app] if filters.app else [], oid)
    else:
        logs = ledger_logs.all_logs(store)
        apps = (views.code(filters.app),) if filters.app else ()
        sources = [Source(log, keys.ledger_view(log, org=oid), apps) for log in logs]
    return _read(store, sources, logs, filters, cursor, limit, proofs=True, view=_name(dims), wanted=wanted)


def records_for_app(
    store: Store, client_id: str, filters: Filters, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> Page:
    dims = {"app": client_id} | ({"person": filters.person} if filters.person else {})
    if filters.app and filters.app != client_id:
        return Page()
    return _read_apps(store, [client_id], filters, cursor, limit, _name(dims))


def records_for_developer(
    store: Store, developer_id: str, filters: Filters, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> Page:
    """The records of every app the developer has now: the union of those apps' views (the ledger
    keeps no index of its own per developer: a record's app names its developer)."""
    view = _name({"developer": developer_id} | _optional(filters))
    apps = sorted(store.redis.smembers(keys.developer_apps(developer_id)))
    if filters.app:
        apps = [filters.app] if filters.app in apps else []
    if not apps:
        if cursor:  # no listing this cursor can come from
            _decode_cursor(view, [], cursor)
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationFailed("limit is out of range", fields={"limit": [f"expected 1 to {MAX_LIMIT}"]})
        return Page()
    return _read_apps(store, apps, filters, cursor, limit, view)


def _read_apps(
    store: Store, apps: list[str], filters: Filters, cursor: str | None, limit: int, view: str
) -> Page:
    """The records of ``apps`` (about ``filters.person`` only, if given): the apps' views in every
    log, or that person's view filtered by the apps."""
    wanted: dict[str, str | set[str]] = {"app": set(apps)}
    if filters.person:
        wanted["person"] = filters.person
        sources, logs = _person_sources(store, filters.person, apps)
    else:
        logs = ledger_logs.all_logs(store)
        sources = [Source(log, keys.ledger_view(log, app=app)) for log in logs for app in apps]
    return _read(store, sources, logs, filters, cursor, limit, proofs=True, view=view, wanted=wanted)


def _optional(filters: Filters) -> dict[str, str]:
    dims = {}
    if filters.app:
        dims["app"] = filters.app
    if filters.person:
        dims["person"] = filters.person
    return dims


VIEWS: dict[str, Callable[[Store, str, Filters, str | None, int], Page]] = {
    "person": records_for_person,
    "org": records_for_org,
    "app": records_for_app,
    "developer": records_for_developer,
}


def fields_received(store: Store, client_id: str, limit: int = 500) -> set[str]:
    """The fields the app's newest ``limit`` delivered records released (for its data label's
    declared-vs-actual comparison)."""
    newest = Filters(newest_first=True)
    page = records_for_app(store, client_id, newest, None, min(limit, 100))
    found: set[str] = set()
    seen = 0
    while True:
        for entry in page.records:
            if entry.get("delivered", True):
                found.update(entry["record"].get("fields") or [])
        seen += len(page.records)
        if not page.next_cursor or seen >= limit:
            return found
        page = records_for_app(store, client_id, newest, page.next_cursor, min(limit - seen, 100))


def as_seen_by_app(record: dict[str, Any], pairwise_key: str) -> dict[str, Any]:
    """The record as a developer may see it: the person named by the pairwise id their app was
    given (per organization for an installation), never the platform's id (issue 14, item 1)."""
    out = {k: v for k, v in record.items() if k != "person"}
    person = record.get("person")
    if person:
        org = record.get("org") if record.get("audience") == "organization" else None
        out["user_id"] = pairwise_id(pairwise_key, str(record.get("app") or ""), str(person), org or None)
    return out


def pairwise_person(store: Store, pairwise_key: str, client_ids: Iterable[str], pairwise: str) -> str | None:
    """The platform id behind a pairwise id one of these apps was given, or None: a developer filters
    their records by the id they know. Organization members through the map the gate keeps of the
    ids it gave each installation; people who granted the app by recomputing their ids (one keyed
    hash per grant of the app)."""
    for client_id in client_ids:
        for org_id in sorted(store.redis.smembers(keys.app_installations(client_id))):
            uid = store.redis.hget(keys.pairwise_reverse(client_id, org_id), pairwise)
            if uid:
                return str(uid)
        for uid in store.redis.sscan_iter(keys.app_grants(client_id), count=1000):
            if pairwise_id(pairwise_key, client_id, uid) == pairwise:
                return str(uid)
    return None


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


APP_CSV_COLUMNS = tuple("user_id" if c == "person" else c for c in CSV_COLUMNS)  # a developer's export


def csv_lines(records: Iterator[dict[str, Any]], columns: tuple[str, ...] = CSV_COLUMNS) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    yield buffer.getvalue()
    for rec in records:
        buffer.seek(0)
        buffer.truncate()
        row = [rec.get(c) for c in columns]
        row[columns.index("fields")] = " ".join(rec.get("fields") or [])
        writer.writerow(["" if v is None else _csv_safe(str(v)) for v in row])
        yield buffer.getvalue()


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in values that come from apps."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
