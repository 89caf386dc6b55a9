"""Migration 7: which leaves were pruned is one bit each.

Up to this release ``broker ledger prune`` kept a hash per log naming the record id of every pruned
leaf (``ledger_pruned``: about 85 bytes each, forever). The broker now keeps a bitmap per log
(``keys.ledger_pruned_bits``, bit i set: leaf i's body was pruned) and, for records older than
``storage.SEQUENCED_KEEP_SECONDS``, drops their entry from the id map as it prunes them. This
migration sets the bits of every leaf the old hash names, then deletes the hash; the id map is left as
it is (the bodies that would say how old those records are are gone). Idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.ledger import logs
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 7
DESCRIPTION = "keep which ledger leaves were pruned as a bitmap per log"
CHUNK = 1000


def up(store: Store, settings: Settings) -> None:
    r = store.redis
    for log in [logs.LEGACY, *logs.names(store)]:
        old = keys.ledger_pruned(log)
        if not r.exists(old):
            continue
        pipe = r.pipeline(transaction=False)
        queued = 0
        for index, _ in r.hscan_iter(old, count=CHUNK):
            if index.isdigit():
                pipe.setbit(keys.ledger_pruned_bits(log), int(index), 1)
                queued += 1
            if queued >= CHUNK:
                pipe.execute()
                pipe = r.pipeline(transaction=False)
                queued = 0
        pipe.execute()
        r.delete(old)
