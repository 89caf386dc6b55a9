"""Migration 9: ledger record bodies are packed, in lists of consecutive leaves.

Up to this release every log kept each record's canonical JSON as it is, in one hash per log
(``keys.ledger_records``: index -> JSON, 360-420 bytes for a record of today's gate and about 75
more for the hash's entry). The sequencer now stores :func:`broker.ledger.storage.pack_body` of it
(about 130 bytes), from which :func:`broker.ledger.storage.unpack_body` gives back the exact same
bytes (leaf hashes, proofs and checkpoints do not change), in lists of
:data:`broker.ledger.storage.BODY_BLOCK` leaves (``keys.ledger_bodies``: about 4 bytes per element
beyond the body). This migration moves every log's bodies (the legacy log's too) from the hash to
the lists, packing the plain ones; a pruned or missing leaf gets an empty element (``broker ledger
verify`` tells the two apart by the pruned bits), and a body that is not the canonical JSON of a
record is kept as it is, for verify to report. Then the hash is deleted. Idempotent: a log without
the hash was moved already.
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
DESCRIPTION = "store ledger record bodies packed, in lists of consecutive leaves (a third of the bytes)"


def up(store: Store, settings: Settings) -> None:
    r = store.redis
    for log in [logs.LEGACY, *logs.names(store)]:
        old = keys.ledger_records(log)
        if not r.exists(old):
            continue
        size = storage.size(store, log)
        for start in range(0, size, storage.BODY_BLOCK):
            idx = [str(i) for i in range(start, min(size, start + storage.BODY_BLOCK))]
            raws = r.execute_command("HMGET", old, *idx, NEVER_DECODE=True)
            block = keys.ledger_bodies(log, start // storage.BODY_BLOCK)
            pipe = r.pipeline(transaction=True)  # the log's keys: one slot
            pipe.delete(block)
            pipe.rpush(block, *[_packed(raw) for raw in raws])
            pipe.execute()
        r.delete(old)


def _packed(raw: bytes | None) -> bytes:
    if raw is None:
        return b""
    try:
        canonical = raw[:1] == b"{" and storage.canonical(json.loads(raw)) == raw
    except ValueError:
        canonical = False
    return storage.pack_body(raw) if canonical else raw
