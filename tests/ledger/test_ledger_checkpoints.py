"""Checkpoint thinning: checkpoints older than the retention are thinned to one per hour, then one
per day; the first and the recent ones stay, every kept one still verifies and consecutive kept
ones are provably consistent."""

from __future__ import annotations

import itertools
import time

import pytest

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.ledger import checkpoints, merkle, storage
from broker.ledger.commands import verify
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from broker.storage.store import Store
from tests.support.ledger import LOG_A as A
from tests.support.ledger import journal, record

NOW = 1_800_000_000
HOUR = 3600
DAY = 86400


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return Keyring(settings.signing_keys_file)


def _grow(store: Store, settings: Settings, keyring: Keyring, times: list[int]) -> None:
    """One record and one checkpoint (signed at that time) for each of ``times``."""
    sequencer = Sequencer(store, keyring, settings)
    for n, ts in enumerate(times):
        journal(store, record(n))
        sequencer.run_log(A)
        store.redis.rpop(keys.ledger_checkpoints(A))  # the checkpoint signed now, replaced:
        checkpoints.sign(store, keyring, settings, A, now=ts)


def _times(store: Store) -> list[int]:
    return [c.timestamp for c in checkpoints.page(store, A, 0, 1000)]


def test_old_checkpoints_are_thinned_to_hourly_then_daily_and_stay_consistent(
    store: Store, settings: Settings, keyring: Keyring
) -> None:
    retention = 24 * HOUR
    very_old = [NOW - 40 * DAY + i * 600 for i in range(12)]  # 2 hours, past the hourly window: 1 day
    old = [NOW - 3 * DAY + i * 900 for i in range(8)]  # 2 hours within the hourly window
    recent = [NOW - HOUR + i * 2 for i in range(5)]  # within the retention: all kept
    _grow(store, settings, keyring, very_old + old + recent)
    before = checkpoints.page(store, A, 0, 1000)
    removed = checkpoints.thin(store, A, retention_seconds=retention, now=NOW)
    kept = _times(store)
    assert removed == len(before) - len(kept) > 0
    assert kept[0] == very_old[0]  # the first checkpoint stays
    assert kept[-5:] == recent  # nothing within the retention is touched
    assert kept[1] == very_old[-1]  # the newest of that day (all twelve are in one day)
    thinned_old = kept[2:-5]
    assert len({t // HOUR for t in old}) == len(thinned_old)  # one per hour
    assert thinned_old == [max(t for t in old if t // HOUR == h) for h in sorted({t // HOUR for t in old})]
    # the kept ones verify, and each is provably consistent with the one before
    summary = verify(store, checkpoints.public_jwks(keyring))
    assert summary["logs"][A]["checkpoints"] == len(kept)
    tree = storage.RedisTree(store, A)
    cps = checkpoints.page(store, A, 0, 1000)
    for first, second in itertools.pairwise(cps):
        proof = tree.consistency_proof(first.tree_size, second.tree_size)
        assert merkle.verify_consistency(
            first.tree_size, second.tree_size, first.root_hash, second.root_hash, proof
        )
    # thinning again changes nothing
    assert checkpoints.thin(store, A, retention_seconds=retention, now=NOW) == 0
    assert _times(store) == kept


def test_nothing_to_thin_within_the_retention(store: Store, settings: Settings, keyring: Keyring) -> None:
    _grow(store, settings, keyring, [NOW - 10, NOW - 5, NOW])
    assert checkpoints.thin(store, A, retention_seconds=HOUR, now=NOW) == 0
    assert _times(store) == [NOW - 10, NOW - 5, NOW]


def test_the_sequencer_thins_each_log_it_runs(store: Store, settings: Settings, keyring: Keyring) -> None:
    _grow(store, settings, keyring, [int(time.time()) - 3 * DAY + i for i in range(4)])
    assert checkpoints.count(store, A) == 4
    Sequencer(store, keyring, settings).run_once()
    assert checkpoints.count(store, A) == 2  # the first, and the newest of that hour
