"""The logs' hash tags sit at evenly spaced cluster slots (issue 12: no shard more than 1.5 times the
mean, and a cluster whose masters each sequence a similar share of the logs). Migration 13 moves
every key of every log from the tags of earlier releases (``{ledger:NN}``) to the new ones, on one
node (RENAME) and on a real 3-master cluster (DUMP / RESTORE / DEL), and the ledger reads, proves
and verifies the same after it."""

from __future__ import annotations

import base64
import time

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.ledger import checkpoints, logs, merkle, storage
from broker.ledger.commands import verify
from broker.migrations import SCHEMA_VERSION, migrate, read_version
from broker.storage import keys
from broker.storage.store import Store
from tests.support.ledger import ALICE, APP_A, APP_B, BOB, CAROL, journal, log_of, record
from tests.support.privacy import sequence

THIRDS = [(0, 5460), (5461, 10922), (10923, 16383)]  # redis-cli --cluster create's split on 3 masters


def _per_third(slots: list[int]) -> list[int]:
    return [sum(low <= s <= high for s in slots) for low, high in THIRDS]


def test_the_logs_tags_spread_evenly_over_contiguous_slot_ranges() -> None:
    """Redis Cluster's own slot function (redis-py's ``key_slot``) on the tags: 16 logs fall 6 / 5 / 5
    on three masters, where the tags of earlier releases fell 4 / 4 / 8; more logs stay as even."""
    names = [logs.name(i) for i in range(16)]
    slots = [key_slot(keys.ledger_size(n).encode()) for n in names]
    assert _per_third(slots) == [6, 5, 5]
    assert len(set(slots)) == 16
    with keys.plain_ledger_tags():
        assert sorted(_per_third([key_slot(keys.ledger_size(n).encode()) for n in names])) == [4, 4, 8]
    for count in (4, 8, 12, 20, 24, 32, 48, 64, 100, 256):  # the largest third within 1.25x the mean
        spread = _per_third([key_slot(keys.ledger_size(logs.name(i)).encode()) for i in range(count)])
        assert max(spread) <= max(2, 1.25 * count / 3), (count, spread)
    # every key of a log shares its tag; the legacy log keeps its own
    assert keys.ledger_tag("03") == f"b:{{ledger:03.{keys.ledger_tag_suffix('03')}}}"
    assert keys.ledger_size("03").startswith(keys.ledger_tag("03") + ":")
    assert keys.ledger_tag(logs.LEGACY) == "b:{ledger}"


def test_on_a_cluster_each_master_holds_a_similar_share_of_the_logs(store: Store) -> None:
    if not isinstance(store.redis, RedisCluster):
        pytest.skip("one node holds every log; the cluster run of this test checks the spread")
    masters: dict[str, int] = {}
    for name in logs.names(store):
        node = store.redis.get_node_from_key(keys.ledger_size(name))
        masters[node.name] = masters.get(node.name, 0) + 1
    assert sorted(masters.values()) == [5, 5, 6]


def _keys_under(store: Store, tag: str) -> set[str]:
    return set(store.redis.scan_iter(match=f"{tag}:*", count=1000))


def _move(store: Store, old: str, new: str) -> None:
    """Rename a key, across slots on a cluster (how the test builds a store of schema version 12)."""
    dumped = store.redis.dump(old)
    ttl = store.redis.pttl(old)
    store.redis.restore(new, max(0, ttl), dumped, replace=True)
    store.redis.delete(old)


def _as_version_12_kept_it(store: Store) -> dict[str, set[str]]:
    """Every key of every log moved back to the tag ``{ledger:NN}``; the old names by log."""
    old_names: dict[str, set[str]] = {}
    for name in logs.names(store):
        new_tag = keys.ledger_tag(name)
        with keys.plain_ledger_tags():
            old_tag = keys.ledger_tag(name)
        for key in _keys_under(store, new_tag):
            _move(store, key, old_tag + key[len(new_tag) :])
            old_names.setdefault(name, set()).add(old_tag + key[len(new_tag) :])
    store.redis.set(keys.schema_version(), SCHEMA_VERSION - 1)
    return old_names


def test_migration_13_moves_every_key_of_every_log_and_the_ledger_proves_and_verifies_the_same(
    store: Store, settings: Settings, client
) -> None:
    keyring = Keyring(settings.signing_keys_file)
    now = time.time()
    people = [ALICE, BOB, CAROL]
    for n in range(30):
        journal(store, record(n, person=people[n % 3], app=(APP_A, APP_B)[n % 2], t=now - 100 + n))
    sequence(store, settings)
    for n in range(30, 34):  # waiting in the journals when the broker is stopped for the upgrade
        journal(store, record(n, person=ALICE, t=now - 60 + n))
    store.redis.set(keys.ledger_lock(log_of(BOB, store)), "held", px=600_000)  # with a time to live
    before = verify(store, checkpoints.public_jwks(keyring))
    log_a = log_of(ALICE, store)
    proof_before = client.get(f"/ledger/v1/logs/{log_a}/leaves/3").get_json()
    new_names = {name: _keys_under(store, keys.ledger_tag(name)) for name in logs.names(store)}
    old_names = _as_version_12_kept_it(store)
    assert set(old_names) == {log_of(p, store) for p in people}
    assert not any(_keys_under(store, keys.ledger_tag(n)) for n in logs.names(store))

    lines: list[str] = []
    assert [m.number for m in migrate(store, settings, progress=lines.append)] == [SCHEMA_VERSION]
    assert read_version(store) == SCHEMA_VERSION == 13
    for name in logs.names(store):
        with keys.plain_ledger_tags():
            assert not _keys_under(store, keys.ledger_tag(name)), name  # nothing left behind
        assert _keys_under(store, keys.ledger_tag(name)) == new_names[name]
    assert 0 < store.redis.pttl(keys.ledger_lock(log_of(BOB, store))) <= 600_000
    store.redis.delete(keys.ledger_lock(log_of(BOB, store)))
    migrate_again = __import__("broker.migrations.m0013_ledger_spread_tags", fromlist=["up"])
    migrate_again.up(store, settings)  # idempotent: nothing to move

    assert verify(store, checkpoints.public_jwks(keyring)) == before
    assert client.get(f"/ledger/v1/logs/{log_a}/leaves/3").get_json() == proof_before
    leaf = proof_before["inclusion_proof"]
    tree = merkle.MemoryTree(
        [storage.RedisTree(store, log_a).leaf(i) for i in range(storage.size(store, log_a))]
    )
    assert [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in leaf] == merkle.inclusion_proof(
        tree, 3, storage.size(store, log_a)
    )
    # the records that waited in the journals go on into the moved log, after ALICE's and CAROL's 20
    sequence(store, settings)
    after = verify(store, checkpoints.public_jwks(keyring))
    assert after["records"] == before["records"] + 4
    assert storage.size(store, log_a) == 24
    assert store.redis.smembers(keys.journals_index(log_a)) <= {APP_A, APP_B}
