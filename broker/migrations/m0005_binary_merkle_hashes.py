"""Migration 5: every log's Merkle hashes as 32 raw bytes in one string per level.

Up to this release each level of a log's tree was a hash (``ledger_level``: index -> 64 hex digits),
about 130 bytes of Redis memory per stored subtree hash, two of them per record on average. The
broker now keeps each level as one string of 32-byte hashes, the i-th at byte 32 * i
(``keys.ledger_hashes``, ``broker.ledger.storage``): 32 bytes each (issue 12, item 2). Every level of
every log (the legacy log included) is copied, then its old hash deleted.

Idempotent: a run interrupted after copying a level copies it again (the same bytes at the same
offsets); levels already moved have no old hash left.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from broker.ledger import logs
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 5
DESCRIPTION = "store each ledger log's Merkle hashes as raw bytes, one string per level"
CHUNK = 1000
HASH_BYTES = 32


def up(store: Store, settings: Settings) -> None:
    r = store.redis
    for log in [logs.LEGACY, *logs.names(store)]:
        tree_size = int(r.get(keys.ledger_size(log)) or 0)
        for level in range(tree_size.bit_length() + 1):
            old = keys.ledger_level(level, log)
            if not r.exists(old):
                continue
            new = keys.ledger_hashes(level, log)
            for chunk in _chunks(r.hscan_iter(old, count=CHUNK)):
                pipe = r.pipeline(transaction=False)
                for index, value in chunk:
                    if index.isdigit() and len(value) == 2 * HASH_BYTES:
                        try:
                            pipe.setrange(new, int(index) * HASH_BYTES, bytes.fromhex(value))
                        except ValueError:
                            continue  # not a hash: ``broker ledger verify`` reports it as missing
                pipe.execute()
            r.delete(old)


def _chunks(items: Iterable[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    chunk: list[tuple[str, str]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
