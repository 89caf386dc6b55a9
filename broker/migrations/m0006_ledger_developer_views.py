"""Migration 6: the ledger keeps no reader index of its own per developer.

Up to this release every record was also written to four sorted sets per developer (the
developer's, and by app, by person, by app and person): about 300 bytes per record, for views that
are the union of the developer's apps' views (a record's app names its developer). Readers now
merge those (``reading.records_for_developer``); this migration deletes the old sets of every log.
Idempotent: what is deleted stays deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.ledger import logs
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 6
DESCRIPTION = "delete the ledger's per-developer reader indexes (a developer's view merges their apps')"
CHUNK = 500


def up(store: Store, settings: Settings) -> None:
    for log in [logs.LEGACY, *logs.names(store)]:
        doomed: list[str] = []
        for key in store.redis.scan_iter(match=f"{keys.ledger_tag(log)}:ix:*developer=*", count=CHUNK):
            doomed.append(key)
            if len(doomed) >= CHUNK:
                store.redis.delete(*doomed)
                doomed = []
        if doomed:
            store.redis.delete(*doomed)
