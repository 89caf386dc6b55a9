"""Migration 12: the Merkle levels 1 to 3 are computed from the leaf hashes, not stored; a pruned
record's id leaves the id map with its body.

Up to this release every level of every log's tree was stored (``keys.ledger_hashes``: 64 bytes of
hashes per leaf). The hashes of levels 1 .. ``storage.DERIVED_BELOW - 1`` are now computed from the
at most 8 leaf hashes beneath them when a proof or a root needs them (36 bytes per leaf), so this
migration deletes those levels' strings: nothing is lost, the leaf hashes hold them. It also drops
from the id maps the entries of leaves that were pruned (earlier releases kept a pruned record's id
for eight days, and a record pruned younger than that kept it for good), but only in a log whose
journals hold nothing (``storage.waiting_since``: an entry waiting there may need its id). Idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.ledger import logs, storage
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 12
DESCRIPTION = "compute the ledger's Merkle levels 1-3 from the leaf hashes; forget pruned records' ids"
BLOCKS = 64  # id maps read at a time


def up(store: Store, settings: Settings) -> None:
    r = store.redis
    for log in [logs.LEGACY, *logs.names(store)]:
        r.delete(*(keys.ledger_hashes(level, log) for level in range(1, storage.DERIVED_BELOW)))
        if storage.waiting_since(store, log) is not None:
            continue
        every = storage.id_blocks(storage.size(store, log), storage.size(store, log))
        for start in range(0, len(every), BLOCKS):
            _forget_pruned(store, log, every[start : start + BLOCKS])


def _forget_pruned(store: Store, log: str, blocks: list[int]) -> None:
    r = store.redis
    pipe = r.pipeline(transaction=False)
    for block in blocks:
        pipe.hgetall(keys.ledger_ids(log, block))
    maps = pipe.execute()
    first = blocks[0] * storage.ID_BLOCK
    stop = (blocks[-1] + 1) * storage.ID_BLOCK
    pruned = storage.pruned_flags(store, log, first, stop)
    pipe = r.pipeline(transaction=False)
    for block, entries in zip(blocks, maps, strict=True):
        gone = [
            rid
            for rid, index in entries.items()
            if str(index).isdigit() and first <= int(index) < stop and pruned[int(index) - first]
        ]
        if gone:
            pipe.hdel(keys.ledger_ids(log, block), *gone)
    pipe.execute()
