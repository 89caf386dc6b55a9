"""Migration 3: the ledger becomes many logs (``broker.ledger.logs``).

Releases before this one had one log on ``{ledger}`` keys and one journal per app
(``b:{a:<client>}:journal``, listed in ``b:journals``). That log is kept as it is, as the frozen
``legacy`` log: never appended to again, still read, proved (``/ledger/v1/checkpoints`` and the
other URLs without a log name) and checked by ``broker ledger verify``, so every checkpoint it ever
signed stays verifiable. What this migration does:

* fixes the number of logs (``BROKER_LEDGER_LOGS``) in Redis, and
* moves every record still waiting in an old journal into the app's journal for the record's log
  (and names the app in that log's journals index), then deletes the old journal.

Idempotent: a run interrupted between copying and deleting copies again; the sequencer appends a
record id only once per log, and a record always routes to the same log.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from broker.ledger import logs
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 4
DESCRIPTION = "split the ledger into logs: the old log stays as the frozen legacy log, waiting records move"
CHUNK = 500


def _log_for(raw: str, count: int) -> str:
    try:
        person = json.loads(raw).get("person")
    except (ValueError, AttributeError):
        person = None
    # not a valid record: any log's sequencer sets it aside (``ledger_rejected``) for the operator
    return logs.log_of(person if isinstance(person, str) else "", count)


def up(store: Store, settings: Settings) -> None:
    r = store.redis
    count = logs.count(store, settings.ledger_logs)
    for client_id in sorted(r.smembers(keys.legacy_journals_index())):
        old = keys.legacy_journal(client_id)
        while True:
            entries = r.xrange(old, "-", "+", count=CHUNK)
            if not entries:
                break
            pipe = r.pipeline(transaction=False)  # the app's slot
            targets = set()
            for _entry_id, fields in entries:
                log = _log_for(fields.get("r", ""), count)
                targets.add(log)
                pipe.xadd(keys.journal(client_id, log), fields)
            pipe.execute()
            pipe = r.pipeline(transaction=False)
            for log in sorted(targets):
                pipe.sadd(keys.journals_index(log), client_id)
            pipe.execute()
            r.xdel(old, *[entry_id for entry_id, _ in entries])
        r.delete(old)
        r.srem(keys.legacy_journals_index(), client_id)
