"""Migration 11: a log's record ids are mapped to their leaves in small hashes of 128 leaves.

Up to this release every log kept one hash of every record id it holds (``keys.ledger_sequenced``:
about 90 bytes a record, the hash being far too large for Redis's compact encoding). The broker now
keeps one hash per 128 consecutive leaves (``keys.ledger_ids``: about 25 bytes a record), and the
sequencer looks for an id it may have appended already in the blocks of the log's recent leaves.
This migration moves every log's entries (the legacy log's too) into the blocks of their leaves,
then deletes the old hash. Idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.ledger import logs, storage
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 11
DESCRIPTION = "map ledger record ids to leaves in one small hash per 128 leaves instead of one per log"
CHUNK = 1000


def up(store: Store, settings: Settings) -> None:
    r = store.redis
    for log in [logs.LEGACY, *logs.names(store)]:
        old = keys.ledger_sequenced(log)
        if not r.exists(old):
            continue
        pipe = r.pipeline(transaction=False)
        queued = 0
        for record_id, index in r.hscan_iter(old, count=CHUNK):
            if not str(index).isdigit():
                continue  # not an entry the sequencer wrote: verify reports the record it misnames
            pipe.hset(keys.ledger_ids(log, int(index) // storage.ID_BLOCK), record_id, index)
            queued += 1
            if queued >= CHUNK:
                pipe.execute()
                queued = 0
        if queued:
            pipe.execute()
        r.delete(old)
