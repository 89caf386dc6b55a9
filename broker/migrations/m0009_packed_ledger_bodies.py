"""Migration 9: ledger record bodies are stored packed.

Up to this release every log kept each record's canonical JSON as it is (360-420 bytes for a
record of today's gate). The sequencer now stores :func:`broker.ledger.storage.pack_body` of it
(about 130 bytes), from which :func:`broker.ledger.storage.unpack_body` gives back the exact same
bytes, so leaf hashes, proofs and checkpoints do not change. Readers take both forms; this
migration repacks the plain bodies of every log (the legacy log too) so that stores written before
it get the same memory per record. A body that is not the canonical JSON of a record is left as it
is, for ``broker ledger verify`` to report. Idempotent: packed bodies are skipped.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from broker.ledger import logs, storage
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 9
DESCRIPTION = "store ledger record bodies packed (the same canonical JSON, about a third of the bytes)"
CHUNK = 500


def up(store: Store, settings: Settings) -> None:
    r = store.redis
    for log in [logs.LEGACY, *logs.names(store)]:
        size = storage.size(store, log)
        for start in range(0, size, CHUNK):
            idx = [str(i) for i in range(start, min(size, start + CHUNK))]
            raws = r.execute_command("HMGET", keys.ledger_records(log), *idx, NEVER_DECODE=True)
            packed = {}
            for i, raw in zip(idx, raws, strict=True):
                if raw is None or raw[:1] != b"{" or not _canonical(raw):
                    continue
                body = storage.pack_body(raw)
                if body != raw:
                    packed[i] = body
            if packed:
                # HSET of the same leaf data, packed: a sequencer appending meanwhile writes other fields
                r.hset(keys.ledger_records(log), mapping=packed)


def _canonical(raw: bytes) -> bool:
    try:
        return storage.canonical(json.loads(raw)) == raw
    except ValueError:
        return False
