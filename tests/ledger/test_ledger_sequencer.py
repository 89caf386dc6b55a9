"""The sequencer moves exactly the journal records into the log, once, in a deterministic order;
checkpoints are signed with the published Ed25519 key."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import KeySet

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.ledger import checkpoints, logs, merkle, storage, views
from broker.ledger.commands import verify
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from broker.storage.store import Store
from tests.support.ledger import (
    ACME,
    APP_A,
    APP_B,
    BOB,
    journal,
    journal_length,
    record,
    record_at,
    view_indexes,
)
from tests.support.ledger import LOG_A as A
from tests.support.ledger import LOG_B as B
from tests.support.ledger import body as stored_body


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return Keyring(settings.signing_keys_file)


@pytest.fixture
def sequencer(store: Store, keyring: Keyring, settings: Settings) -> Sequencer:
    return Sequencer(store, keyring, settings, batch_size=4)


def stored(store: Store, log: str = A) -> list[dict]:
    n = storage.size(store, log)
    return [record_at(store, log, i) for i in range(n)]


def test_moves_exactly_the_journal_records_in_time_order(store: Store, sequencer: Sequencer) -> None:
    recs = [record(3, app=APP_B), record(1), record(2, app=APP_B, person=BOB), record(4, org=ACME), record(0)]
    for r in recs:
        journal(store, r)
    result = sequencer.run_once()
    assert result.appended == 5 and result.removed == 5
    got = stored(store)  # Alice's log: her four records, in time order
    assert [r["id"] for r in got] == [record(i)["id"] for i in (0, 1, 3, 4)]
    assert [r["index"] for r in got] == [0, 1, 2, 3]
    assert [r["id"] for r in stored(store, B)] == [record(2)["id"]]  # Bob's, in his own log
    for r in [*got, *stored(store, B)]:
        original = next(x for x in recs if x["id"] == r["id"])
        assert {k: v for k, v in r.items() if k not in ("index", "log")} == original
    assert journal_length(store, APP_A) == 0 and journal_length(store, APP_B) == 0
    # the stored tree equals the definition over canonical JSON leaves
    leaves = [merkle.leaf_hash(storage.canonical(r)) for r in got]
    assert storage.RedisTree(store, A).root(4) == merkle.mth(leaves)
    assert set(result.signed) == {A, B} and result.checkpoint is None  # one per log that grew
    assert result.signed[A].tree_size == 4 and result.signed[B].tree_size == 1
    assert result.signed[A].root_hash == merkle.mth(leaves)
    # an empty run neither appends nor signs a new checkpoint, and forgets empty journals
    again = sequencer.run_once()
    assert again.appended == 0 and again.signed == {}
    assert store.redis.smembers(keys.journals_index(A)) == set()
    assert store.redis.smembers(keys.journals_index(B)) == set()
    assert checkpoints.count(store, A) == checkpoints.count(store, B) == 1
    assert sum(checkpoints.count(store, log) for log in logs.names(store)) == 2  # empty logs sign none


def test_many_batches_keep_the_tree_consistent(store: Store, sequencer: Sequencer) -> None:
    for i in range(23):
        journal(store, record(i, app=APP_A if i % 3 else APP_B))
    result = sequencer.run_once()
    assert result.appended == 23
    got = stored(store)
    assert [r["id"] for r in got] == [record(i)["id"] for i in range(23)]
    leaves = [merkle.leaf_hash(storage.canonical(r)) for r in got]
    memory = merkle.MemoryTree(leaves)
    for level, hashes in enumerate(memory.levels):  # 32 raw bytes each, at 32 * index
        raw = store.redis.execute_command("GET", keys.ledger_hashes(level, A), NEVER_DECODE=True)
        if not storage.stored_level(level):
            assert raw is None  # levels 1-3: computed from the leaf hashes
            continue
        written = b"".join(hashes)
        assert raw[: len(written)] == written and raw[len(written) :].strip(b"\0") == b""  # grown ahead
    tree = storage.RedisTree(store, A)
    for m in (0, 7, 22):
        assert merkle.verify_inclusion(m, 23, leaves[m], tree.inclusion_proof(m, 23), memory.root())


def test_crash_between_append_and_journal_delete_never_appends_twice(
    store: Store, sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        journal(store, record(i))

    def crash(log: str, done: dict) -> None:
        raise RuntimeError("killed between the two steps")

    monkeypatch.setattr(sequencer, "_delete_moved", crash)
    with pytest.raises(RuntimeError):
        sequencer.run_once()
    assert storage.size(store, A) == 3 and journal_length(store, APP_A) == 3
    assert store.redis.get(keys.ledger_lock(A)) is None  # released even on failure
    monkeypatch.undo()
    journal(store, record(3))
    result = sequencer.run_once()
    assert result.appended == 1 and result.removed == 4
    assert [r["id"] for r in stored(store)] == [record(i)["id"] for i in range(4)]
    assert journal_length(store, APP_A) == 0


def test_a_record_already_in_the_log_is_found_in_the_blocks_its_time_allows(
    store: Store, sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each id map's newest ledger time is kept (4 bytes a block), and the sequencer looks for a
    journal record's id only in the blocks whose newest time is at least the record's: records
    that wait a second time (a crash between the append and the journal delete) are found in the
    block they are in, whether old or recent, and a block of an earlier release (no time) is
    always looked in; a fresh record is looked for in the newest block only."""
    now = int(time.time())
    for i in range(300):  # three id maps (128 leaves each), ledger times increasing
        journal(store, record(i, t=now - 1000 + i))
    while sequencer.run_once().appended:
        pass
    assert storage.size(store, A) == 300
    times = storage.block_times(store, A, [0, 1, 2])
    assert times == {0: now - 1000 + 127, 1: now - 1000 + 255, 2: now - 1000 + 299}

    asked: list[tuple[str, int]] = []
    real = store.redis.pipeline

    def counting(*args, **kwargs):  # which id maps are asked for how many ids
        pipe = real(*args, **kwargs)
        hmget = pipe.hmget

        def spy(name, ids, *more):
            asked.append((name, len(ids)))
            return hmget(name, ids, *more)

        pipe.hmget = spy
        return pipe

    monkeypatch.setattr(store.redis, "pipeline", counting)
    for i in (5, 200, 299):  # appended, then back in the journal as after a crash
        journal(store, record(i, t=now - 1000 + i))
    journal(store, record(300, t=now))  # and one new record
    result = sequencer.run_once()
    assert (result.appended, result.removed) == (1, 4)
    assert storage.size(store, A) == 301
    assert sorted(asked) == sorted(
        [(keys.ledger_ids(A, 0), 1), (keys.ledger_ids(A, 1), 2), (keys.ledger_ids(A, 2), 3)]
    )  # block 0 for record 5 only; the new record (time now) in the newest block only

    store.redis.delete(keys.ledger_id_times(A))  # as blocks of schema version 12 are
    asked.clear()
    journal(store, record(7, t=now - 1000 + 7))
    journal(store, record(301, t=now + 1))
    result = sequencer.run_once()
    assert (result.appended, result.removed) == (1, 2)
    assert storage.size(store, A) == 302
    assert len(asked) == 3 and all(n == 2 for _, n in asked)  # no times: every id in every block
    assert [r["id"] for r in stored(store)] == [record(i)["id"] for i in range(302)]


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_a_record_whose_time_is_not_a_finite_number_is_set_aside(
    store: Store, sequencer: Sequencer, bad: str
) -> None:
    store.redis.sadd(keys.journals_index(A), APP_A)
    raw = json.dumps(record(1)).replace('"time": 1700000001', f'"time": {bad}')
    assert bad in raw
    store.redis.xadd(keys.journal(APP_A, A), {"r": raw})
    result = sequencer.run_once()
    assert (result.appended, result.rejected) == (0, 1)
    assert storage.size(store, A) == 0


def test_the_same_record_twice_in_journals_is_appended_once(store: Store, sequencer: Sequencer) -> None:
    journal(store, record(1))
    journal(store, record(1))
    assert sequencer.run_once().appended == 1
    assert storage.size(store, A) == 1


def test_invalid_journal_entries_are_set_aside(store: Store, sequencer: Sequencer) -> None:
    store.redis.sadd(keys.journals_index(A), APP_A)
    store.redis.xadd(keys.journal(APP_A, A), {"r": "not json"})
    store.redis.xadd(keys.journal(APP_A, A), {"r": json.dumps({"id": "x"})})
    journal(store, record(5))
    result = sequencer.run_once()
    assert (result.appended, result.rejected) == (1, 2)
    assert store.redis.llen(keys.ledger_rejected(A)) == 2
    assert journal_length(store, APP_A) == 0


def test_the_set_aside_entries_are_bounded(
    store: Store, sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.ledger import sequencer as sequencer_module

    monkeypatch.setattr(sequencer_module, "REJECTED_KEEP", 3)
    store.redis.sadd(keys.journals_index(A), APP_A)
    for n in range(5):
        store.redis.xadd(keys.journal(APP_A, A), {"r": f"not json {n}" + "x" * 10_000})
    assert sequencer.run_once().rejected == 5
    kept = [json.loads(e) for e in store.redis.lrange(keys.ledger_rejected(A), 0, -1)]
    assert [e["r"][:10] for e in kept] == ["not json 2", "not json 3", "not json 4"]  # the newest
    assert all(len(e["r"]) == 4096 for e in kept)


def test_one_sequencer_per_log_at_a_time_and_the_other_logs_go_on(store: Store, sequencer: Sequencer) -> None:
    journal(store, record(1))
    journal(store, record(2, person=BOB))
    store.redis.set(keys.ledger_lock(A), "someone-else", px=10000)  # another process sequences log A
    busy = sequencer.run_once()
    assert busy.busy == [A] and busy.appended == 1  # Bob's log was free: sequenced meanwhile
    assert storage.size(store, A) == 0 and storage.size(store, B) == 1
    assert sequencer.run_log(A).locked is False
    store.redis.delete(keys.ledger_lock(A))
    assert sequencer.run_once().appended == 1
    assert storage.size(store, A) == 1


def test_sequencers_in_threads_share_the_logs(store: Store, keyring: Keyring, settings: Settings) -> None:
    people = ["usr_" + c * 16 for c in "123456789abc"]
    for n in range(120):
        journal(store, record(n, person=people[n % len(people)]))
    results: list = []

    def run() -> None:
        results.append(Sequencer(store, keyring, settings, batch_size=7).run_once())

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for _ in range(10):  # a log another thread held when this one came is sequenced by that thread
        if sum(r.appended for r in results) == 120:
            break
        results.append(Sequencer(store, keyring, settings).run_once())
    assert sum(r.appended for r in results) == 120
    assert sum(storage.size(store, log) for log in logs.names(store)) == 120
    assert verify(store, checkpoints.public_jwks(keyring))["records"] == 120


def test_lost_lock_refuses_the_append(
    store: Store, sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal(store, record(1))
    original = Sequencer._append

    def steal(self: Sequencer, log: str, token: str, records: list) -> list[int]:
        store.redis.set(keys.ledger_lock(log), "thief")
        return original(self, log, token, records)

    monkeypatch.setattr(Sequencer, "_append", steal)
    with pytest.raises(Exception, match="LEDGER lock lost"):
        sequencer.run_once()
    assert storage.size(store, A) == 0 and journal_length(store, APP_A) == 1


def test_views_by_person_app_and_org_none_by_developer(store: Store, sequencer: Sequencer) -> None:
    journal(store, record(1, org=ACME))
    journal(store, record(2, person=BOB))
    sequencer.run_once()
    assert view_indexes(store, A, org=ACME) == [0]
    assert view_indexes(store, B, person=BOB) == [0]
    assert view_indexes(store, A, person=BOB) == []  # Bob's records are in his log
    assert view_indexes(store, A, app=APP_A) == [0]
    assert view_indexes(store, B, app=APP_A) == [0]
    assert views.read(store, keys.ledger_view(A, org=ACME)) == views.read(
        store, keys.ledger_view(A, app=APP_A)
    )
    # a filter by person reads the person's view (one log); a developer's view merges their apps':
    # no view of their own, no sorted set at all
    assert sorted(store.redis.scan_iter(match="*:v:*")) == sorted(
        keys.ledger_view(log, **dims)
        for log, dims in [(A, {"person": record(0)["person"]}), (A, {"app": APP_A}), (A, {"org": ACME}),
                          (B, {"person": BOB}), (B, {"app": APP_A})]
    )  # fmt: skip
    assert list(store.redis.scan_iter(match="*:ix:*")) == []


def test_checkpoint_verifies_against_published_jwks(
    store: Store, sequencer: Sequencer, client, keyring: Keyring
) -> None:
    for i in range(5):
        journal(store, record(i))
    cp = sequencer.run_once().checkpoint
    assert cp is not None
    published = client.get("/ledger/v1/keys")
    assert published.status_code == 200
    jwks = published.get_json()
    assert [k["alg"] for k in jwks["keys"]] == ["EdDSA"] and all("d" not in k for k in jwks["keys"])
    obj = jws.deserialize_compact(cp.jws, KeySet.import_key_set(jwks), algorithms=["EdDSA"])
    payload = json.loads(obj.payload)
    assert payload["tree_size"] == 5 and payload["root_hash"] == checkpoints.b64(cp.root_hash)
    assert obj.headers()["kid"] == payload["kid"] == keyring.signing_key("EdDSA").kid
    # a forged payload under the same signature fails
    head, _body, sig = cp.jws.split(".")
    forged_body = jws.serialize_compact(
        {"alg": "EdDSA"}, b'{"tree_size":6}', keyring.signing_key("EdDSA"), algorithms=["EdDSA"]
    ).split(".")[1]
    with pytest.raises(checkpoints.CheckpointInvalid):
        checkpoints.verify(f"{head}.{forged_body}.{sig}", jwks)


def test_run_forever_stops_on_event(store: Store, sequencer: Sequencer) -> None:
    journal(store, record(1))
    stop = threading.Event()
    thread = threading.Thread(target=sequencer.run_forever, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while storage.size(store, A) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert storage.size(store, A) == 1


def test_run_forever_survives_a_failed_run(
    store: Store, sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = {"n": 0}
    original = Sequencer.run_once

    def flaky(self: Sequencer):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return original(self)

    monkeypatch.setattr(Sequencer, "run_once", flaky)
    sequencer.settings = dataclasses.replace(sequencer.settings, checkpoint_seconds=1)
    journal(store, record(1))
    stop = threading.Event()
    thread = threading.Thread(target=sequencer.run_forever, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while storage.size(store, A) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(10)
    assert storage.size(store, A) == 1 and calls["n"] >= 2
    assert "sequencer run failed" in caplog.text


@hypothesis_settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(1, 5), st.data())
def test_stored_tree_matches_memory_tree_for_any_batching(
    store: Store,
    keyring: Keyring,
    settings: Settings,
    batches: list[int],
    batch_size: int,
    data: st.DataObject,
) -> None:
    store.redis.flushdb()
    seq = Sequencer(store, keyring, settings, batch_size=batch_size)
    n = 0
    for count in batches:
        for _ in range(count):
            journal(store, record(n, app=APP_A if n % 2 else APP_B))
            n += 1
        seq.run_once()
    assert storage.size(store, A) == n
    leaves = [merkle.leaf_hash(stored_body(store, A, i).encode()) for i in range(n)]
    memory = merkle.MemoryTree(leaves)
    tree = storage.RedisTree(store, A)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    assert tree.root(size) == memory.root(size)
    assert tree.inclusion_proof(index, size) == merkle.inclusion_proof(memory, index, size)
    first = data.draw(st.integers(1, size))
    assert tree.consistency_proof(first, size) == merkle.consistency_proof(memory, first, size)
    for cp in checkpoints.page(store, A, 0, 100):
        assert cp.root_hash == memory.root(cp.tree_size)


def test_a_journal_missing_from_its_index_is_found_by_the_sweep(store: Store, sequencer: Sequencer) -> None:
    """A gate that died between its records and the index write (a cluster's second slot) leaves a
    journal its log's index does not name: the periodic sweep finds it."""
    store.redis.zadd(keys.apps_all(), {APP_A: 1})
    store.redis.xadd(keys.journal(APP_A, A), {"r": json.dumps(record(1))})
    assert sequencer.run_once().appended == 0
    assert sequencer.sweep() == 1
    assert store.redis.smembers(keys.journals_index(A)) == {APP_A}
    assert sequencer.run_once().appended == 1
    assert sequencer.sweep() == 0


def test_every_proof_and_root_from_the_stored_tree_matches_the_whole_tree(
    store: Store, settings: Settings
) -> None:
    """70 leaves appended in batches of 7 (so every batch starts from a frontier that needs hashes
    of the levels that are not stored): every root, every inclusion proof and every consistency
    proof the stored tree gives, for every tree size, is the one the whole in-memory tree gives."""
    small = Sequencer(store, Keyring(settings.signing_keys_file), settings, batch_size=7)
    for i in range(70):
        journal(store, record(i))
    while small.run_once().appended:
        pass
    leaves = [merkle.leaf_hash(storage.canonical(r)) for r in stored(store)]
    assert len(leaves) == 70
    memory = merkle.MemoryTree(leaves)
    tree = storage.RedisTree(store, A)
    for n in range(1, 71):
        assert tree.root(n) == memory.root(n) == merkle.mth(leaves[:n])
        for m in range(n):
            assert tree.inclusion_proof(m, n) == merkle.inclusion_proof(memory, m, n)
        for m in range(1, n + 1):
            assert tree.consistency_proof(m, n) == merkle.consistency_proof(memory, m, n)
    assert storage.RedisTree(store, A).inclusion_proof(37, 70) == merkle.inclusion_proof(memory, 37, 70)
