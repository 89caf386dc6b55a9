"""Helpers for the ledger tests: write journal entries the way the disclosure gate does."""

from __future__ import annotations

import json
from typing import Any

from broker.ledger import logs, storage, views
from broker.storage import keys
from broker.storage.store import Store

APP_A = "app_" + "a" * 16
APP_B = "app_" + "b" * 16
DEV = "usr_" + "d" * 16
ALICE = "usr_" + "1" * 16
BOB = "usr_" + "2" * 16
CAROL = "usr_" + "3" * 16  # in the same log as ALICE (with 16 logs), BOB in another
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


def log_of(person: str, store: Store | None = None) -> str:
    """The log a person's records go to (the stored number of logs, 16 by default)."""
    return logs.log_of(person, logs.count(store) if store is not None else logs.DEFAULT_LOGS)


def journal(store: Store, rec: dict[str, Any]) -> str:
    """XADD the record to its app's journal for the person's log and SADD that log's journals
    index, like the gate on one node."""
    log = log_of(rec["person"], store)
    pipe = store.redis.pipeline(transaction=False)
    pipe.sadd(keys.journals_index(log), rec["app"])
    pipe.xadd(keys.journal(rec["app"], log), {"r": json.dumps(rec)})
    return str(pipe.execute()[1])


def journal_entries(store: Store, client_id: str) -> list[tuple[str, dict[str, str]]]:
    """``client_id``'s journal entries over every log, oldest first."""
    found = []
    for log in logs.names(store):
        found += store.redis.xrange(keys.journal(client_id, log))
    return sorted(found, key=_entry_order)


def _entry_order(entry: tuple[str, dict[str, str]]) -> tuple[int, int, str, int]:
    """Stream id order; entries of different logs' journals can share an id (each stream counts
    on its own), and then one request's records keep their order (``<request id>-<n>``)."""
    ms, _, seq = entry[0].partition("-")
    try:
        rid = str(json.loads(entry[1].get("r", "{}")).get("id", ""))
    except (ValueError, AttributeError):
        rid = ""
    request, _, n = rid.rpartition("-")
    return int(ms), int(seq or 0), request, int(n) if n.isdigit() else 0


def journal_records(store: Store, client_id: str) -> list[dict[str, Any]]:
    """The records in ``client_id``'s journals, oldest first (not yet sequenced into the ledger)."""
    return [json.loads(fields["r"]) for _, fields in journal_entries(store, client_id)]


def journal_length(store: Store, client_id: str) -> int:
    return sum(int(store.redis.xlen(keys.journal(client_id, log))) for log in logs.names(store))


LOG_A = log_of(ALICE)  # the log of ALICE's records (16 logs, the default)
LOG_B = log_of(BOB)


def ledger_bodies(store: Store) -> dict[str, str]:
    """Every stored record body of every log, as ``"<log>:<index>" -> canonical JSON``."""
    out = {}
    for log in logs.all_logs(store):
        size = storage.size(store, log)
        for block in range(0, (size + storage.BODY_BLOCK - 1) // storage.BODY_BLOCK):
            for position, raw in enumerate(storage.raw_block(store, log, block)):
                if raw:
                    out[f"{log}:{block * storage.BODY_BLOCK + position}"] = storage.unpack_body(raw).decode()
    return out


def body(store: Store, log: str, index: int | str) -> str | None:
    """The canonical JSON of the record stored at ``index`` (None: pruned or absent)."""
    return storage.read_bodies(store, log, [int(index)])[0]


def record_at(store: Store, log: str, index: int | str) -> dict[str, Any]:
    found = body(store, log, index)
    assert found is not None, (log, index)
    data: dict[str, Any] = json.loads(found)
    return data


def view_indexes(store: Store, log: str, **dims: str) -> list[int]:
    """The leaf indexes one reader view of a log lists, in order (``broker.ledger.views``)."""
    return [index for index, _ in views.read(store, keys.ledger_view(log, **dims))]


def drop_from_view(store: Store, log: str, index: int, **dims: str) -> None:
    """Take leaf ``index`` out of one reader view (tampering)."""
    key = keys.ledger_view(log, **dims)
    raw = store.redis.execute_command("GET", key, NEVER_DECODE=True) or b""
    w = views.width(key)
    kept = b"".join(
        raw[p : p + w] for p in range(0, len(raw), w) if views.ENTRY.unpack_from(raw, p)[0] != index
    )
    store.redis.set(key, kept)


def put_body(store: Store, log: str, index: int | str, text: str | bytes) -> None:
    """Store ``text`` as the body at ``index`` as it is (plain: a reader takes any JSON body), past
    the end of its block too (an inserted record)."""
    block, position = storage.body_at(int(index))
    key = keys.ledger_bodies(log, block)
    length = int(store.redis.llen(key))
    if position < length:
        store.redis.lset(key, position, text)
    else:
        store.redis.rpush(key, *[b""] * (position - length), text)


def remove_body(store: Store, log: str, index: int | str) -> None:
    """Take the body at ``index`` away (tampering: not marked pruned)."""
    put_body(store, log, index, b"")


def stored_count(store: Store, log: str) -> int:
    """How many bodies a log holds (pruned ones do not count)."""
    return sum(1 for key in ledger_bodies(store) if key.startswith(f"{log}:"))


def write_legacy_log(store: Store, settings: Any, recs: list[dict[str, Any]]) -> None:
    """Records in the one log of earlier releases (``{ledger}`` keys), with a signed checkpoint."""
    import secrets

    from broker.core.keyring import Keyring
    from broker.ledger import checkpoints
    from broker.ledger.sequencer import Sequencer

    keyring = Keyring(settings.signing_keys_file)
    token = secrets.token_hex(8)
    store.redis.set(keys.ledger_lock(logs.LEGACY), token)
    Sequencer(store, keyring, settings)._append(logs.LEGACY, token, recs)
    checkpoints.sign(store, keyring, settings, logs.LEGACY)
    store.redis.delete(keys.ledger_lock(logs.LEGACY))


def write_hashes(store: Store, log: str, level: int, hashes: dict[int, bytes]) -> None:
    """Store subtree hashes of one level as the sequencer does (32 raw bytes at 32 * index): a
    test that forges or repairs a tree."""
    pipe = store.redis.pipeline(transaction=False)
    for index, value in hashes.items():
        pipe.setrange(keys.ledger_hashes(level, log), index * 32, value)
    pipe.execute()


def write_tree(store: Store, log: str, levels: list[list[bytes]]) -> None:
    """Store every stored level of a tree (``merkle.MemoryTree(...).levels``)."""
    for level, hashes in enumerate(levels):
        if storage.stored_level(level):
            write_hashes(store, log, level, dict(enumerate(hashes)))
