"""A more compact ledger (issue 12, item 2). Merkle hashes as raw bytes, one string per level: 32
bytes a stored hash; migration 5 rewrites the hex hashes of earlier releases (every log, the legacy
one too), once, and the trees read, prove and verify the same after it; a tampered byte is still
caught. No reader index per developer: migration 6 deletes the old ones, the view merges the apps'.
A pruned leaf is one bit, and its id leaves the id map once nothing can name it (migration 7)."""

from __future__ import annotations

import base64
import json
import time

import pytest

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.ledger import checkpoints, logs, merkle, reading, storage, views
from broker.ledger.commands import VerifyFailed, prune_log, verify
from broker.ledger.sequencer import Sequencer
from broker.migrations import (
    m0005_binary_merkle_hashes,
    m0006_ledger_developer_views,
    m0007_ledger_pruned_bitmap,
)
from broker.storage import keys
from broker.storage.store import Store
from tests.support.ledger import ALICE, APP_A, BOB, LOG_A, put_body, record, write_legacy_log
from tests.support.ledger import body as stored_body


def _levels(store: Store, log: str) -> dict[int, bytes]:
    size = storage.size(store, log)
    found = {}
    for level in range(size.bit_length()):
        raw = store.redis.execute_command("GET", keys.ledger_hashes(level, log), NEVER_DECODE=True)
        if raw:
            found[level] = raw
    return found


def _journal(store: Store, recs: list[dict]) -> None:
    """Records in LOG_A's journal of APP_A, as the gate writes them."""
    for rec in recs:
        store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(rec)})
    store.redis.sadd(keys.journals_index(LOG_A), APP_A)


def _as_earlier_releases_wrote_it(store: Store, log: str) -> None:
    """Turn a log's hash strings back into the hex hashes of releases before migration 5."""
    for level, raw in _levels(store, log).items():
        hexes = {str(i): raw[i * 32 : (i + 1) * 32].hex() for i in range(len(raw) // 32)}
        store.redis.hset(keys.ledger_level(level, log), mapping=hexes)
        store.redis.delete(keys.ledger_hashes(level, log))


def test_each_stored_hash_is_32_bytes(store: Store, settings: Settings) -> None:
    sequencer = Sequencer(store, Keyring(settings.signing_keys_file), settings)
    _journal(store, [record(i) for i in range(37)])
    sequencer.run_once()
    levels = _levels(store, LOG_A)
    bodies = [stored_body(store, LOG_A, i).encode() for i in range(37)]
    tree = merkle.MemoryTree([merkle.leaf_hash(b) for b in bodies])
    assert set(levels) == {0, 4, 5}  # levels 1-3 are computed from the leaf hashes when needed
    for level, raw in levels.items():  # 32 bytes a hash at 32 * index; the string grows ahead in zeros
        written = b"".join(tree.levels[level])
        assert len(written) == {0: 37, 4: 2, 5: 1}[level] * 32
        assert raw[: len(written)] == written and raw[len(written) :].strip(b"\0") == b""
        assert len(raw) <= len(written) + max(32, len(written) // 8) + 32  # an eighth ahead, not double
    assert store.redis.exists(keys.ledger_level(0, LOG_A)) == 0


def test_migration_5_rewrites_hex_hashes_once_and_the_logs_still_prove_and_verify(
    store: Store, settings: Settings, client
) -> None:
    keyring = Keyring(settings.signing_keys_file)
    write_legacy_log(store, settings, [record(0), record(1, person=BOB), record(2)])
    sequencer = Sequencer(store, keyring, settings)
    for i in range(3, 20):
        store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(record(i))})
    store.redis.sadd(keys.journals_index(LOG_A), APP_A)
    sequencer.run_once()

    def hashes(log: str) -> dict[int, bytes]:  # without the zeros a string grows ahead in
        size = storage.size(store, log)
        return {level: raw[: (size >> level) * 32] for level, raw in _levels(store, log).items()}

    written = {log: hashes(log) for log in (logs.LEGACY, LOG_A)}
    for log in written:
        _as_earlier_releases_wrote_it(store, log)
    assert _levels(store, LOG_A) == {}

    m0005_binary_merkle_hashes.up(store, settings)
    m0005_binary_merkle_hashes.up(store, settings)  # idempotent
    for log, levels in written.items():
        assert hashes(log) == levels
        assert not any(store.redis.exists(keys.ledger_level(level, log)) for level in range(5))
    summary = verify(store, checkpoints.public_jwks(keyring))
    assert summary["records"] == 20
    page = reading.records_for_person(store, ALICE, reading.Filters())
    assert len(page.records) == 19 and all(e["inclusion_proof"] is not None for e in page.records)
    proof = client.get(f"/ledger/v1/logs/{LOG_A}/leaves/3").get_json()
    assert proof["inclusion_proof"]

    # one changed byte of a stored hash is caught
    flipped = bytes([_levels(store, LOG_A)[4][5] ^ 0xFF])
    store.redis.setrange(keys.ledger_hashes(4, LOG_A), 5, flipped)
    with pytest.raises(VerifyFailed, match=rf"log {LOG_A}: .*subtree hash at level 4 index 0"):
        verify(store, checkpoints.public_jwks(keyring))


def test_migration_6_deletes_the_per_developer_indexes_and_the_view_stays(
    store: Store, settings: Settings
) -> None:
    sequencer = Sequencer(store, Keyring(settings.signing_keys_file), settings)
    _journal(store, [record(i) for i in range(4)])
    sequencer.run_once()
    dev = record(0)["developer"]
    store.redis.sadd(keys.developer_apps(dev), APP_A)
    old = [  # what earlier releases wrote beside the other indexes
        keys.ledger_index(LOG_A, developer=dev),
        keys.ledger_index(LOG_A, developer=dev, app=APP_A),
        keys.ledger_index(LOG_A, developer=dev, person=ALICE),
        keys.ledger_index(LOG_A, developer=dev, app=APP_A, person=ALICE),
    ]
    kept = keys.ledger_index(LOG_A, app=APP_A, person=ALICE)  # an index of that release it keeps
    for key in [*old, kept]:
        store.redis.zadd(key, {storage.member(i): 1_700_000_000 + i for i in range(4)})
    m0006_ledger_developer_views.up(store, settings)
    m0006_ledger_developer_views.up(store, settings)  # idempotent
    assert store.redis.exists(*old) == 0 and store.redis.zcard(kept) == 4
    page = reading.records_for_developer(store, dev, reading.Filters(person=ALICE))
    assert [e["index"] for e in page.records] == [0, 1, 2, 3]


def test_pruning_keeps_one_bit_forgets_ids_waits_for_the_journals_and_migration_7_converts_the_old_map(
    store: Store, settings: Settings
) -> None:
    keyring = Keyring(settings.signing_keys_file)
    sequencer = Sequencer(store, keyring, settings)
    now = time.time()
    for i in range(6):  # 0-3 long ago, 4-5 an hour ago: every one is older than the cutoff below
        t = 1_700_000_000 + i if i < 4 else now - 3600
        store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(record(i, t=t))})
    store.redis.sadd(keys.journals_index(LOG_A), APP_A)
    sequencer.run_once()
    checkpoints.sign(store, keyring, settings, LOG_A)
    assert prune_log(store, LOG_A, now) == 6
    assert storage.pruned_flags(store, LOG_A, 0, 8) == [True] * 6 + [False] * 2
    # no journal holds anything: no record can come back to be deduplicated, every id goes
    assert store.redis.exists(keys.ledger_ids(LOG_A, 0)) == 0
    assert store.redis.exists(keys.ledger_pruned(LOG_A)) == 0
    assert verify(store, checkpoints.public_jwks(keyring))["logs"][LOG_A]["pruned"] == 6

    # a record waits in a journal (a sequencer may have appended it and crashed before deleting it):
    # records as recent as it, less a minute, keep their bodies and ids until a later run
    for i, t in ((6, now - 1000), (7, now - 1000), (8, now - 100), (9, now - 100)):
        store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(record(i, t=t))})
    sequencer.run_once()
    store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(record(10, t=now - 50))})
    assert storage.waiting_since(store, LOG_A) == pytest.approx(now - 110)
    assert prune_log(store, LOG_A, now) == 2
    assert sorted(store.redis.hgetall(keys.ledger_ids(LOG_A, 0))) == [record(8)["id"], record(9)["id"]]
    sequencer.run_once()  # the journal is empty again
    assert storage.waiting_since(store, LOG_A) is None
    assert prune_log(store, LOG_A, now) == 3
    assert storage.pruned_flags(store, LOG_A, 0, 12) == [True] * 11 + [False]
    assert store.redis.exists(keys.ledger_ids(LOG_A, 0)) == 0
    assert verify(store, checkpoints.public_jwks(keyring))["logs"][LOG_A]["pruned"] == 11

    # a store of an earlier release: the pruned map instead of the bits
    store.redis.delete(keys.ledger_pruned_bits(LOG_A))
    store.redis.hset(keys.ledger_pruned(LOG_A), mapping={str(i): record(i)["id"] for i in range(11)})
    with pytest.raises(VerifyFailed, match="the record is missing and was not pruned"):
        verify(store, checkpoints.public_jwks(keyring))
    m0007_ledger_pruned_bitmap.up(store, settings)
    m0007_ledger_pruned_bitmap.up(store, settings)  # idempotent
    assert storage.pruned_flags(store, LOG_A, 0, 11) == [True] * 11
    assert store.redis.exists(keys.ledger_pruned(LOG_A)) == 0
    assert verify(store, checkpoints.public_jwks(keyring))["logs"][LOG_A]["pruned"] == 11


def _raw_bodies(store: Store, log: str) -> list[bytes | None]:
    return storage.read_raw_bodies(store, log, list(range(storage.size(store, log))))


def test_bodies_are_stored_packed_in_lists_and_read_back_exactly(store: Store, settings: Settings) -> None:
    """The sequencer stores each body packed (a third of the bytes) in its block's list; readers,
    proofs and verify see the canonical JSON, whose hash is the leaf; one changed byte of a packed
    body is caught; pruning a whole block deletes its list."""
    keyring = Keyring(settings.signing_keys_file)
    sequencer = Sequencer(store, keyring, settings)
    _journal(store, [record(i) for i in range(5)])
    sequencer.run_once()
    assert store.redis.llen(keys.ledger_bodies(LOG_A, 0)) == 5
    raws = _raw_bodies(store, LOG_A)
    texts = [stored_body(store, LOG_A, i) for i in range(5)]
    for i, (raw, text) in enumerate(zip(raws, texts, strict=True)):
        assert raw is not None and text is not None
        assert raw[:1] in storage.PACKED and len(raw) < len(text) * 0.5
        assert text.encode() == storage.canonical({**record(i), "index": i, "log": LOG_A})
        assert storage.RedisTree(store, LOG_A).leaf(i) == merkle.leaf_hash(text.encode())
    page = reading.records_for_person(store, ALICE, reading.Filters())
    assert [e["record"]["id"] for e in page.records] == [record(i)["id"] for i in range(5)]
    assert verify(store, checkpoints.public_jwks(keyring))["records"] == 5

    for at in (3, len(raws[2] or b"") // 2, -1):  # a changed byte anywhere is caught
        broken = bytearray(raws[2] or b"")
        broken[at] ^= 0x01
        put_body(store, LOG_A, 2, bytes(broken))
        with pytest.raises(VerifyFailed, match=r"record 2 "):
            verify(store, checkpoints.public_jwks(keyring))
    put_body(store, LOG_A, 2, raws[2] or b"")
    assert prune_log(store, LOG_A, time.time()) == 5
    assert store.redis.exists(keys.ledger_bodies(LOG_A, 0)) == 1  # the block is not full yet
    assert verify(store, checkpoints.public_jwks(keyring))["logs"][LOG_A]["pruned"] == 5


def test_a_block_whose_every_leaf_was_pruned_is_deleted(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "BODY_BLOCK", 8)
    keyring = Keyring(settings.signing_keys_file)
    sequencer = Sequencer(store, keyring, settings)
    _journal(store, [record(i, t=1_700_000_000 + i) for i in range(20)])
    sequencer.run_once()
    assert [store.redis.llen(keys.ledger_bodies(LOG_A, b)) for b in range(4)] == [8, 8, 4, 0]
    assert prune_log(store, LOG_A, 1_700_000_010) == 10
    assert [store.redis.exists(keys.ledger_bodies(LOG_A, b)) for b in range(3)] == [0, 1, 1]
    assert [stored_body(store, LOG_A, i) is None for i in (7, 8, 9, 10)] == [True, True, True, False]
    assert verify(store, checkpoints.public_jwks(keyring))["logs"][LOG_A]["pruned"] == 10
    page = reading.records_for_person(store, ALICE, reading.Filters(), limit=100)
    assert [e["index"] for e in page.records] == list(range(10, 20))


def test_migration_9_packs_the_bodies_of_earlier_releases_into_lists(
    store: Store, settings: Settings
) -> None:
    from broker.migrations import m0009_packed_ledger_bodies

    keyring = Keyring(settings.signing_keys_file)
    sequencer = Sequencer(store, keyring, settings)
    _journal(store, [record(i) for i in range(7)])
    sequencer.run_once()
    texts = [stored_body(store, LOG_A, i) for i in range(7)]
    # as releases before it stored them: the canonical JSON itself in a hash per log; one body is
    # not canonical, one was pruned
    store.redis.delete(keys.ledger_bodies(LOG_A, 0))
    store.redis.hset(keys.ledger_records(LOG_A), mapping={str(i): t for i, t in enumerate(texts[:5]) if t})
    store.redis.hset(keys.ledger_records(LOG_A), "6", "not a record")
    store.redis.setbit(keys.ledger_pruned_bits(LOG_A), 5, 1)

    m0009_packed_ledger_bodies.up(store, settings)
    m0009_packed_ledger_bodies.up(store, settings)  # idempotent
    assert store.redis.exists(keys.ledger_records(LOG_A)) == 0
    raws = _raw_bodies(store, LOG_A)
    assert all(raw is not None and raw[:1] in storage.PACKED for raw in raws[:5])
    assert raws[5:] == [b"", b"not a record"]  # pruned; left for verify to report
    assert [stored_body(store, LOG_A, i) for i in range(5)] == texts[:5]
    with pytest.raises(VerifyFailed, match=r"record 6 .*not JSON"):
        verify(store, checkpoints.public_jwks(keyring))
    put_body(store, LOG_A, 6, texts[6] or "")
    assert verify(store, checkpoints.public_jwks(keyring))["logs"][LOG_A]["pruned"] == 1


def _views(store: Store) -> dict[str, list[tuple[int, float]]]:
    return {k: views.read(store, k) for k in store.redis.scan_iter("*:v:*")}


def test_migration_10_rebuilds_the_reader_views_and_drops_the_sorted_sets(
    store: Store, settings: Settings
) -> None:
    """Releases before it kept a sorted set per view and filter; the migration rebuilds the packed
    views from the bodies, entry for entry what the sequencer writes, and sets the logs' clocks."""
    from broker.migrations import m0010_ledger_packed_views

    sequencer = Sequencer(store, Keyring(settings.signing_keys_file), settings)
    times = [1_700_000_000, 1_700_000_005, 1_700_000_003, 1_700_000_009]  # the third comes late
    for i, t in enumerate(times):
        rec = record(i, t=t, org="org_" + "a" * 16 if i % 2 else None)
        store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(rec)})
        store.redis.sadd(keys.journals_index(LOG_A), APP_A)
        if i in (1, 3):
            sequencer.run_once()
    written = _views(store)
    assert len(written) == 3 and store.redis.get(keys.ledger_clock(LOG_A)) == repr(1_700_000_009.0)
    # as an earlier release left it: sorted sets, no views, no clock
    old = [keys.ledger_index(LOG_A, person=ALICE), keys.ledger_index(LOG_A, app=APP_A, person=ALICE)]
    for key in old:
        store.redis.zadd(key, {storage.member(i): t for i, t in enumerate(times)})
    store.redis.delete(*written, keys.ledger_clock(LOG_A))
    store.redis.set(keys.ledger_view(LOG_A, app=APP_A), b"half a run")  # an interrupted migration

    m0010_ledger_packed_views.up(store, settings)
    m0010_ledger_packed_views.up(store, settings)  # idempotent
    assert _views(store) == written
    assert store.redis.exists(*old) == 0
    assert store.redis.get(keys.ledger_clock(LOG_A)) == repr(1_700_000_009.0)
    # the late record is listed at its ledger time, after the one before it
    assert [t for _, t in views.read(store, keys.ledger_view(LOG_A, person=ALICE))] == [
        1_700_000_000.0, 1_700_000_005.0, 1_700_000_005.0, 1_700_000_009.0
    ]  # fmt: skip
    page = reading.records_for_person(store, ALICE, reading.Filters(app=APP_A, newest_first=True))
    assert [e["index"] for e in page.records] == [3, 2, 1, 0]


def test_record_ids_live_in_small_compact_maps_and_migration_11_moves_the_old_one(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One id map per ID_BLOCK leaves, each small enough for Redis's compact encoding; an entry the
    sequencer appended already is not appended again after a crash; migration 11 spreads the one
    hash of earlier releases over the blocks."""
    from broker.migrations import m0011_ledger_id_blocks

    monkeypatch.setattr(storage, "ID_BLOCK", 4)
    keyring = Keyring(settings.signing_keys_file)
    sequencer = Sequencer(store, keyring, settings)
    _journal(store, [record(i) for i in range(10)])
    sequencer.run_once()
    maps = [store.redis.hgetall(keys.ledger_ids(LOG_A, b)) for b in range(3)]
    assert [len(m) for m in maps] == [4, 4, 2]
    assert maps[2] == {record(8)["id"]: "8", record(9)["id"]: "9"}
    assert store.redis.object("encoding", keys.ledger_ids(LOG_A, 0)) in ("ziplist", "listpack")
    # a crash after the append, before the journal entries were deleted: they come back
    for i in (3, 9):
        store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(record(i))})
    store.redis.sadd(keys.journals_index(LOG_A), APP_A)
    sequencer.run_once()
    assert storage.size(store, LOG_A) == 10

    # as an earlier release kept it: one hash per log
    everything = {k: v for m in maps for k, v in m.items()}
    store.redis.delete(*[keys.ledger_ids(LOG_A, b) for b in range(3)])
    store.redis.hset(keys.ledger_sequenced(LOG_A), mapping=everything)
    with pytest.raises(VerifyFailed, match="never sequenced"):
        verify(store, checkpoints.public_jwks(keyring))
    m0011_ledger_id_blocks.up(store, settings)
    m0011_ledger_id_blocks.up(store, settings)  # idempotent
    assert store.redis.exists(keys.ledger_sequenced(LOG_A)) == 0
    assert [store.redis.hgetall(keys.ledger_ids(LOG_A, b)) for b in range(3)] == maps
    assert verify(store, checkpoints.public_jwks(keyring))["records"] == 10


def test_migration_12_deletes_the_computed_levels_and_the_ids_of_pruned_records(
    store: Store, settings: Settings, client
) -> None:
    """A log as an earlier release kept it: every level of the tree stored, and the ids of records
    pruned while young still in the id map. Migration 12 deletes levels 1-3 (the leaf hashes give
    them) and those ids (no journal waits), and the log still proves and verifies."""
    from broker.migrations import m0012_ledger_derived_levels
    from tests.support.ledger import write_hashes

    keyring = Keyring(settings.signing_keys_file)
    sequencer = Sequencer(store, keyring, settings)
    now = time.time()
    _journal(store, [record(i, t=now - 100 + i) for i in range(37)])
    sequencer.run_once()
    checkpoints.sign(store, keyring, settings, LOG_A)
    ids = store.redis.hgetall(keys.ledger_ids(LOG_A, 0))
    assert prune_log(store, LOG_A, now - 100 + 10) == 10
    tree = merkle.MemoryTree([storage.RedisTree(store, LOG_A).leaf(i) for i in range(37)])
    for level in (1, 2, 3):
        write_hashes(store, LOG_A, level, dict(enumerate(tree.levels[level])))
    store.redis.hset(keys.ledger_ids(LOG_A, 0), mapping=ids)  # as pruning young records left them

    # a record waiting in a journal: the ids stay (it may need them), the levels go
    store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(record(99, t=now))})
    m0012_ledger_derived_levels.up(store, settings)
    assert not any(store.redis.exists(keys.ledger_hashes(level, LOG_A)) for level in (1, 2, 3))
    assert store.redis.hlen(keys.ledger_ids(LOG_A, 0)) == 37
    store.redis.delete(keys.journal(APP_A, LOG_A))

    m0012_ledger_derived_levels.up(store, settings)
    m0012_ledger_derived_levels.up(store, settings)  # idempotent
    assert store.redis.hgetall(keys.ledger_ids(LOG_A, 0)) == {
        rid: index for rid, index in ids.items() if int(index) >= 10
    }
    assert _levels(store, LOG_A).keys() == {0, 4, 5}
    summary = verify(store, checkpoints.public_jwks(keyring))
    assert summary["records"] == 37 and summary["pruned"] == 10
    for index in (3, 20):  # a pruned record's leaf still has its proof
        leaf = client.get(f"/ledger/v1/logs/{LOG_A}/leaves/{index}").get_json()
        proof = [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in leaf["inclusion_proof"]]
        assert proof == merkle.inclusion_proof(tree, index, 37)


def test_waiting_since_reads_the_oldest_waiting_record_of_every_journal_of_the_log(store: Store) -> None:
    """The oldest record waiting in any journal of the log, less a minute; an entry that is not a
    record counts by its stream id's time (the gate's Redis clock)."""
    assert storage.waiting_since(store, LOG_A) is None
    store.redis.sadd(keys.journals_index(LOG_A), APP_A, "app_0000000000000b0b")
    store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(record(1, t=1_700_000_500))})
    store.redis.xadd(keys.journal(APP_A, LOG_A), {"r": json.dumps(record(2, t=1_700_000_100))})
    assert storage.waiting_since(store, LOG_A) == 1_700_000_500 - 60  # the first entry of a journal
    store.redis.xadd(keys.journal("app_0000000000000b0b", LOG_A), {"r": "not json"}, id="1700000200000-0")
    assert storage.waiting_since(store, LOG_A) == 1_700_000_200 - 60
