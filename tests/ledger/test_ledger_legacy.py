"""The log of releases before the ledger had many logs stays readable, provable and verified as the
frozen ``legacy`` log; migration 3 moves records still waiting in the old per-app journals into the
journals of their logs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.ledger import checkpoints, logs, reading, storage
from broker.ledger.commands import VerifyFailed, verify
from broker.ledger.sequencer import Sequencer
from broker.migrations import m0004_ledger_logs
from broker.storage import keys
from broker.storage.store import Store
from tests.support.ledger import (
    ALICE,
    APP_A,
    APP_B,
    BOB,
    LOG_A,
    LOG_B,
    journal_entries,
    record,
    remove_body,
    write_legacy_log,
)


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return Keyring(settings.signing_keys_file)


def test_the_legacy_log_is_read_proved_and_verified_beside_the_new_logs(
    store: Store, keyring: Keyring, settings: Settings, client: Any
) -> None:
    write_legacy_log(store, settings, [record(0), record(1, person=BOB), record(2)])
    assert keys.ledger_size(logs.LEGACY) == "b:{ledger}:size"  # the keys of earlier releases
    store.redis.zadd(keys.apps_all(), {APP_A: 1})
    sequencer = Sequencer(store, keyring, settings)
    store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(record(3))})
    store.redis.sadd(keys.journals_index(LOG_A), APP_A)
    sequencer.run_once()
    assert storage.size(store, logs.LEGACY) == 3  # never appended to again
    page = reading.records_for_person(store, ALICE, reading.Filters())
    assert [(e["log"], e["index"]) for e in page.records] == [(logs.LEGACY, 0), (logs.LEGACY, 2), (LOG_A, 0)]
    assert all(e["inclusion_proof"] is not None for e in page.records)
    assert set(page.checkpoints) == {logs.LEGACY, LOG_A}
    listed = client.get("/ledger/v1/logs").get_json()["logs"]
    assert listed[0]["log"] == logs.LEGACY and listed[0]["tree_size"] == 3
    assert [x["log"] for x in listed[1:]] == logs.names(store)
    # the URLs of earlier releases serve the legacy log
    assert client.get("/ledger/v1/checkpoints/latest").get_json()["tree_size"] == 3
    assert client.get("/ledger/v1/leaves/1").get_json()["log"] == logs.LEGACY
    summary = verify(store, checkpoints.public_jwks(keyring))
    assert summary["records"] == 4 and summary["logs"][logs.LEGACY]["records"] == 3
    remove_body(store, logs.LEGACY, 1)
    with pytest.raises(VerifyFailed, match=r"log legacy: record 1 .* the record is missing"):
        verify(store, checkpoints.public_jwks(keyring))


def test_migration_3_moves_waiting_records_into_their_logs_once(
    store: Store, keyring: Keyring, settings: Settings
) -> None:
    waiting = [record(1), record(2, person=BOB), record(3, app=APP_B)]
    for rec in waiting:
        store.redis.xadd(keys.legacy_journal(rec["app"]), {"r": json.dumps(rec)})
        store.redis.sadd(keys.legacy_journals_index(), rec["app"])
    store.redis.xadd(keys.legacy_journal(APP_A), {"r": "not json"})
    m0004_ledger_logs.up(store, settings)
    m0004_ledger_logs.up(store, settings)  # idempotent
    assert not store.redis.exists(keys.legacy_journal(APP_A), keys.legacy_journal(APP_B))
    assert store.redis.scard(keys.legacy_journals_index()) == 0
    moved = [f["r"] for _, f in journal_entries(store, APP_A)]
    assert sorted(moved) == sorted([json.dumps(waiting[0]), json.dumps(waiting[1]), "not json"])  # once each
    assert store.redis.smembers(keys.journals_index(LOG_A)) == {APP_A, APP_B}
    assert APP_A in store.redis.smembers(keys.journals_index(LOG_B))
    result = Sequencer(store, keyring, settings).run_once()
    assert (result.appended, result.rejected) == (3, 1)
    assert storage.size(store, LOG_A) == 2 and storage.size(store, LOG_B) == 1
    assert verify(store, checkpoints.public_jwks(keyring))["records"] == 3
