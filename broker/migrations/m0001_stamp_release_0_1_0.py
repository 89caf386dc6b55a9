"""Migration 1: data of release 0.1.0, which kept no schema version.

0.1.0 wrote the same key layout as schema version 1, so nothing is rewritten: the migration checks
that the store holds broker data and nothing else (every key under the broker's prefix, and the
records any 0.1.0 broker writes at its first start), then the version is stamped. Idempotent: a
second run finds the same keys and changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.errors import CommandError
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 1
DESCRIPTION = "data of release 0.1.0 (no schema version): check it is broker data, stamp version 1"

_SAMPLE = 5


def up(store: Store, settings: Settings) -> None:
    foreign: list[str] = []
    found = 0
    for key in store.redis.scan_iter(count=1000):
        found += 1
        if not key.startswith(keys.PREFIX):
            foreign.append(key)
            if len(foreign) >= _SAMPLE:
                break
    if foreign:
        raise CommandError(
            f"this Redis holds keys that are not the broker's (e.g. {', '.join(repr(k) for k in foreign)}); "
            "nothing was changed. Point BROKER_REDIS_URL at the broker's own Redis database"
        )
    known = (
        keys.users_all(),
        keys.apps_all(),
        keys.orgs_all(),
        keys.ledger_size(keys.LEGACY_LOG),
        keys.legacy_journals_index(),
    )
    if found and store.redis.exists(*known) == 0:
        raise CommandError(
            f"this Redis holds keys under {keys.PREFIX!r} but no directory, app or ledger of a broker: "
            "it does not look like broker data; nothing was changed"
        )
