"""Versioned data: the data-schema version kept in Redis, and the ordered migrations that bring data
written by an earlier release up to the version this code reads (``broker migrate``).

The version is one string key, :func:`broker.storage.keys.schema_version` (no hash tag: a single key
lives in one slot of a Redis Cluster like any other). Its absence means one of two things: a fresh,
empty store (stamped with :data:`SCHEMA_VERSION` the first time a broker starts on it), or data of
release 0.1.0, which had no version key (migration 1 checks that it is broker data and stamps it).

Every process that reads or writes broker data checks the version before it starts
(:func:`require_current`, called by :func:`broker.runtime.open_store`): a store that is older needs
``broker migrate``, one that is newer needs a newer broker; neither is served. ``broker migrate``,
``broker backup`` and ``broker restore`` open the store without that check.

Adding a migration: a module ``broker/migrations/m<NNNN>_<name>.py`` with ``NUMBER``,
``DESCRIPTION`` and an idempotent ``up(store, settings)`` (it may run again after an interruption:
the version moves on only once ``up`` returned), then one line in :data:`MIGRATIONS` below.
:data:`SCHEMA_VERSION` follows by itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from broker.errors import CommandError
from broker.migrations import (
    m0001_stamp_release_0_1_0,
    m0002_seal_webhook_secrets,
    m0003_compact_tokens,
    m0004_ledger_logs,
    m0005_binary_merkle_hashes,
    m0006_ledger_developer_views,
    m0007_ledger_pruned_bitmap,
    m0008_token_generations,
    m0009_packed_ledger_bodies,
    m0010_ledger_packed_views,
    m0011_ledger_id_blocks,
    m0012_ledger_derived_levels,
    m0013_ledger_spread_tags,
)
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store


@dataclass(frozen=True)
class Migration:
    number: int
    description: str
    up: Callable[[Store, Settings], None]


def _migration(module: Any) -> Migration:
    return Migration(module.NUMBER, module.DESCRIPTION, module.up)


# In order; the number of each is its position (checked below). The last one's number is the schema
# version this code reads and writes.
MIGRATIONS: tuple[Migration, ...] = (
    _migration(m0001_stamp_release_0_1_0),
    _migration(m0002_seal_webhook_secrets),
    _migration(m0003_compact_tokens),
    _migration(m0004_ledger_logs),
    _migration(m0005_binary_merkle_hashes),
    _migration(m0006_ledger_developer_views),
    _migration(m0007_ledger_pruned_bitmap),
    _migration(m0008_token_generations),
    _migration(m0009_packed_ledger_bodies),
    _migration(m0010_ledger_packed_views),
    _migration(m0011_ledger_id_blocks),
    _migration(m0012_ledger_derived_levels),
    _migration(m0013_ledger_spread_tags),
)
assert [m.number for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1)), "migrations out of order"

SCHEMA_VERSION = MIGRATIONS[-1].number
# the schema version from which a ledger log's keys carry the tag {ledger:NN.S} (keys.ledger_tag);
# the migrations before it were written for {ledger:NN} and run with those names
SPREAD_LEDGER_TAGS = m0013_ledger_spread_tags.NUMBER
MIGRATE_LOCK_MS = 10 * 60 * 1000


class SchemaError(CommandError):
    """The data's schema version is not the one this broker reads; the message says what to do."""


def read_version(store: Store) -> int | None:
    """The stored schema version; None when there is none (an empty store, or 0.1.0 data)."""
    raw = store.redis.get(keys.schema_version())
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SchemaError(
            f"the data-schema version key {keys.schema_version()!r} holds {raw!r}, not a number"
        ) from None


def stored_version(store: Store) -> int | None:
    """:func:`read_version` for reports (``/readyz``): None also when Redis fails or the key is bad."""
    try:
        return read_version(store)
    except (SchemaError, redis.RedisError, OSError):
        return None


def is_empty(store: Store) -> bool:
    """No key at all (on every primary of a cluster)."""
    return next(iter(store.redis.scan_iter(count=100)), None) is None


def current_version(store: Store) -> int:
    """The stored version, 0 for data without one (release 0.1.0), :data:`SCHEMA_VERSION` when empty."""
    version = read_version(store)
    if version is not None:
        return version
    return SCHEMA_VERSION if is_empty(store) else 0


def pending(store: Store) -> list[Migration]:
    version = current_version(store)
    return [m for m in MIGRATIONS if m.number > version]


def require_current(store: Store) -> int:
    """Refuse data this broker must not serve; stamp a fresh, empty store. Returns the version."""
    version = read_version(store)
    if version is None and is_empty(store):
        # SET NX: two processes starting on the same fresh store agree on one stamp.
        store.redis.set(keys.schema_version(), SCHEMA_VERSION, nx=True)
        version = read_version(store)
    if version == SCHEMA_VERSION:
        return version
    if version is not None and version > SCHEMA_VERSION:
        raise SchemaError(
            f"the data has schema version {version}, newer than this broker reads ({SCHEMA_VERSION}): it "
            "was written by a newer release. Run that release (or newer), or restore a backup made "
            "before the upgrade"
        )
    found = (
        "no schema version (data written by broker 0.1.0)" if version is None else f"schema version {version}"
    )
    raise SchemaError(
        f"the data has {found}; this broker reads schema version {SCHEMA_VERSION}. Back it up "
        "(`broker backup FILE`), then run `broker migrate`, and start again"
    )


def migrate(
    store: Store,
    settings: Settings,
    *,
    dry_run: bool = False,
    progress: Callable[[str], None] = print,
) -> list[Migration]:
    """Run the pending migrations in order (or only list them with ``dry_run``); returns them."""
    version = read_version(store)
    if version is not None and version > SCHEMA_VERSION:
        require_current(store)  # raises the "newer" message
    todo = pending(store)
    start = current_version(store)
    if not todo:
        if not dry_run and version is None:
            store.redis.set(keys.schema_version(), SCHEMA_VERSION, nx=True)  # a fresh store
        progress(f"schema version {max(start, SCHEMA_VERSION)}: up to date, nothing to migrate")
        return []
    verb = "would run" if dry_run else "running"
    progress(f"schema version {start} -> {SCHEMA_VERSION}: {verb} {len(todo)} migration(s)")
    if dry_run:
        for m in todo:
            progress(f"  {m.number}: {m.description}")
        return todo
    lock = keys.migrate_lock()
    if not store.redis.set(lock, "1", nx=True, px=MIGRATE_LOCK_MS):
        raise SchemaError(
            "another `broker migrate` is running on this data (or one was interrupted less than "
            f"10 minutes ago: wait, or delete the key {lock!r})"
        )
    try:
        for index, m in enumerate(todo, 1):
            progress(f"[{index}/{len(todo)}] migration {m.number}: {m.description} ...")
            with keys.plain_ledger_tags() if m.number < SPREAD_LEDGER_TAGS else contextlib.nullcontext():
                m.up(store, settings)  # written for the ledger's keys as they were at its version
            store.redis.set(keys.schema_version(), m.number)
            progress(f"[{index}/{len(todo)}] migration {m.number}: done (schema version {m.number})")
    finally:
        store.redis.delete(lock)
    return todo
