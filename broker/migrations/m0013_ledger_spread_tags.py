"""Migration 13: every log's keys move to a hash tag whose cluster slot is evenly spaced.

Up to this release log ``NN`` kept its keys under the tag ``{ledger:NN}``, and CRC16 put the 16
default tags 4 / 4 / 8 on a 3-master cluster's slot ranges: one master held half the ledger and did
half the sequencing. The tag is now ``{ledger:NN.S}`` (:func:`broker.storage.keys.ledger_tag`), ``S``
chosen so log ``NN``'s slot sits at its place in an evenly spaced sequence (6 / 5 / 5 of 16 on 3
masters). This migration renames every key of every appendable log (the legacy log ``{ledger}``
keeps its tag): ``RENAME`` on one node; on a cluster, where the two names are in different slots,
``DUMP``, ``RESTORE`` under the new name with the same time to live, then ``DEL``. Key by key, each
step leaving the key whole under one name or both, so a run that stops can be started again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.cluster import RedisCluster

from broker.ledger import logs
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 13
DESCRIPTION = "move every ledger log's keys to a hash tag with an evenly spaced cluster slot"
CHUNK = 500


def up(store: Store, settings: Settings) -> None:
    for log in logs.names(store):
        with keys.plain_ledger_tags():
            old_tag = keys.ledger_tag(log)
        new_tag = keys.ledger_tag(log)
        found = [_name(k) for k in store.redis.scan_iter(match=f"{old_tag}:*", count=CHUNK)]
        for start in range(0, len(found), CHUNK):
            chunk = found[start : start + CHUNK]
            moves = [(old, new_tag + old[len(old_tag) :]) for old in chunk]
            if isinstance(store.redis, RedisCluster):
                _copy_across_slots(store, moves)
            else:
                pipe = store.redis.pipeline(transaction=False)
                for old, new in moves:
                    pipe.rename(old, new)
                for reply in pipe.execute(raise_on_error=False):
                    if isinstance(reply, Exception) and "no such key" not in str(reply).lower():
                        raise reply


def _copy_across_slots(store: Store, moves: list[tuple[str, str]]) -> None:
    r = store.redis
    pipe = r.pipeline(transaction=False)
    for old, _new in moves:
        pipe.dump(old)  # binary, never decoded
        pipe.pttl(old)
    replies = pipe.execute()
    pipe = r.pipeline(transaction=False)
    for (old, new), dumped, ttl in zip(moves, replies[::2], replies[1::2], strict=True):
        if dumped is None:  # gone since the scan (moved by an earlier run)
            continue
        pipe.restore(new, max(0, int(ttl)), dumped, replace=True)
        pipe.delete(old)
    pipe.execute()


def _name(key: str | bytes) -> str:
    return key.decode() if isinstance(key, bytes) else key
