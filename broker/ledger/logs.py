"""The ledger's logs: how many, their names, and which log a person's records go to.

The ledger is ``N`` independent RFC 9162 logs (``BROKER_LEDGER_LOGS``, default 16), named ``00``
to ``N-1`` (two digits at least), each under its own hash tag ``{ledger:NN}`` so the logs spread
over a cluster's slots, each with its own sequencer lock, tree and signed checkpoints.

**Routing (stable, documented):** a record goes to log
``int(sha1(person id as UTF-8).hexdigest()[:8], 16) % N``: all of one person's records are in one
log, where they can be found and proved. The gate's script computes the same with
``redis.sha1hex`` (gate_disclose.lua). Because routing depends on ``N``, ``N`` is written once to
Redis (``keys.ledger_log_count``) by the first process that needs it and read from there by every
process after; changing the setting later has no effect (a warning says so).

``legacy`` is the one log of releases before 0.3 (tag ``{ledger}``): never appended to again,
still read, proved and verified like the others (docs/data-model.md).
"""

from __future__ import annotations

import hashlib
import logging

from broker.storage import keys
from broker.storage.store import Store

DEFAULT_LOGS = 16
MAX_LOGS = 256
LEGACY = keys.LEGACY_LOG
ANNOUNCE_SECONDS = 60  # how long the gate trusts that a journal is in its log's journals index

log = logging.getLogger("broker.ledger")
_ATTR = "_ledger_log_count"  # the count, cached on the Store instance


def name(number: int) -> str:
    return str(number).zfill(2)


def log_of(person: str, count: int) -> str:
    """The log a person's records go to (see the module docstring)."""
    return name(int(hashlib.sha1(person.encode()).hexdigest()[:8], 16) % count)  # noqa: S324 - routing, not security


def count(store: Store, configured: int | None = None) -> int:
    """How many logs the ledger has: the stored number, else (first use) ``configured`` stored."""
    found: int | None = getattr(store, _ATTR, None)
    if found is not None:
        return found
    r = store.redis
    raw = r.get(keys.ledger_log_count())
    if raw is None:
        r.set(keys.ledger_log_count(), str(configured or DEFAULT_LOGS), nx=True)
        raw = r.get(keys.ledger_log_count())
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise RuntimeError(f"{keys.ledger_log_count()} holds {raw!r}, not a number of logs") from None
    if not 1 <= value <= MAX_LOGS:
        raise RuntimeError(f"{keys.ledger_log_count()} holds {value}, not 1 to {MAX_LOGS}")
    if configured is not None and configured != value:
        log.warning(
            "BROKER_LEDGER_LOGS is %d but the ledger has %d logs; using %d (the number is fixed once set)",
            configured,
            value,
            value,
        )
    setattr(store, _ATTR, value)
    return value


def forget(store: Store) -> None:
    """Drop the cached count (tests that flush Redis)."""
    if hasattr(store, _ATTR):
        delattr(store, _ATTR)


def names(store: Store, configured: int | None = None) -> list[str]:
    """The appendable logs, in order."""
    return [name(i) for i in range(count(store, configured))]


def legacy_size(store: Store) -> int:
    return int(store.redis.get(keys.ledger_size(LEGACY)) or 0)


def all_logs(store: Store) -> list[str]:
    """Every log readers and ``broker ledger verify`` look at: the legacy log if it holds records,
    then the appendable ones."""
    return ([LEGACY] if legacy_size(store) else []) + names(store)
