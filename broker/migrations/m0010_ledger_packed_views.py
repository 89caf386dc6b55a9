"""Migration 10: the ledger's reader views are packed strings.

Up to this release every log kept a sorted set per reader view and filter combination (person,
person + app, app, org, org + app, org + person, org + app + person): one entry per record per view,
about 105 bytes each once a set is large. The broker now keeps four kinds of view per log as strings
of fixed-width entries (``broker.ledger.views``: 20 bytes in the person's view, 12 in the app's, the
org's and the org + app one), ordered by each leaf's ledger time (``keys.ledger_clock``). This
migration rebuilds every log's views (the legacy log's too) from the record bodies in leaf order,
sets each log's clock, then deletes the sorted sets. Pruned records are in no view, as before.
Idempotent: each run rebuilds the views from scratch.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from broker.ledger import logs, storage, views
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 10
DESCRIPTION = "keep the ledger's reader views as packed strings (a few bytes a record) instead of sorted sets"
CHUNK = 1000


def up(store: Store, settings: Settings) -> None:
    r = store.redis
    for log in [logs.LEGACY, *logs.names(store)]:
        for key in list(r.scan_iter(match=keys.ledger("v:*", log), count=CHUNK)):
            r.delete(key)  # an interrupted run's views: rebuilt below
        size = storage.size(store, log)
        clock = 0.0
        for start in range(0, size, CHUNK):
            idx = list(range(start, min(size, start + CHUNK)))
            raws = storage.read_raw_bodies(store, log, idx)
            appends: dict[str, bytearray] = {}
            for i, raw in zip(idx, raws, strict=True):
                if not raw:
                    continue  # pruned: listed nowhere
                try:
                    record = json.loads(storage.unpack_body(raw))
                    clock = views.ledger_time(clock, record["time"])
                    found = views.entries(record, log, i, clock)
                except (ValueError, TypeError, KeyError, storage.LedgerCorrupt):
                    continue  # not a record: `broker ledger verify` reports it
                for key, entry in found:
                    appends.setdefault(key, bytearray()).extend(entry)
            pipe = r.pipeline(transaction=False)
            for key, data in appends.items():
                pipe.append(key, bytes(data))
            if appends:
                pipe.execute()
        if size:
            r.set(keys.ledger_clock(log), repr(clock))
        for key in list(r.scan_iter(match=keys.ledger("ix:*", log), count=CHUNK)):
            r.delete(key)
