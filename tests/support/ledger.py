"""Helpers for the ledger tests: write journal entries the way the disclosure gate does."""

from __future__ import annotations

import json
from typing import Any

from broker.storage import keys
from broker.storage.store import Store

APP_A = "app_" + "a" * 16
APP_B = "app_" + "b" * 16
DEV = "usr_" + "d" * 16
ALICE = "usr_" + "1" * 16
BOB = "usr_" + "2" * 16
ACME = "org_" + "a" * 16


def record(
    n: int,
    *,
    person: str = ALICE,
    app: str = APP_A,
    org: str | None = None,
    t: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": f"dr_{n:016x}",
        "time": 1_700_000_000 + n if t is None else t,
        "app": app,
        "developer": DEV,
        "audience": "organization" if org else "individual",
        "org": org,
        "person": person,
        "grant": "in_" + "0" * 16 if org else "gr_" + "0" * 16,
        "fields": ["user_id", "nickname"],
        "endpoint": "/v1/me",
        "request_id": f"req{n}",
        "catalog_version": "1",
        **extra,
    }


def journal(store: Store, rec: dict[str, Any]) -> str:
    """SADD the journals index and XADD the record, in one pipeline, like the gate."""
    pipe = store.redis.pipeline(transaction=False)
    pipe.sadd(keys.journals_index(), rec["app"])
    pipe.xadd(keys.journal(rec["app"]), {"r": json.dumps(rec)})
    return str(pipe.execute()[1])


def journal_records(store: Store, client_id: str) -> list[dict[str, Any]]:
    """The records in ``client_id``'s journal, oldest first (not yet sequenced into the ledger)."""
    return [json.loads(fields["r"]) for _, fields in store.redis.xrange(keys.journal(client_id))]
