"""`broker ledger verify` recomputes everything and names the first bad record or checkpoint;
`broker ledger prune` keeps the log verifiable; `broker ledger export` writes NDJSON and CSV."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest
from joserfc import jwk, jws

from broker import cli
from broker.config import Settings
from broker.core.keyring import Keyring
from broker.ledger import merkle, storage, views
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from broker.storage.store import Store
from tests.support.ledger import (
    ACME,
    ALICE,
    APP_B,
    CAROL,
    drop_from_view,
    journal,
    log_of,
    put_body,
    record,
    record_at,
    remove_body,
    stored_count,
    view_indexes,
    write_hashes,
    write_tree,
)
from tests.support.ledger import LOG_A as A
from tests.support.ledger import body as stored_body


@pytest.fixture
def ledger(store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch, redis_server: Any) -> Store:
    """Nine records in two batches (two checkpoints) about Alice and Carol, both in log A, and the CLI
    environment pointing at them."""
    monkeypatch.setenv("BROKER_REDIS_URL", redis_server.url)
    monkeypatch.setenv("BROKER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("BROKER_LOG_LEVEL", "WARNING")
    sequencer = Sequencer(store, Keyring(settings.signing_keys_file), settings)
    for i in range(5):
        journal(store, record(i, person=ALICE if i % 2 else CAROL, org=ACME if i == 3 else None))
    sequencer.run_once()
    for i in range(5, 9):
        journal(store, record(i, app=APP_B))
    sequencer.run_once()
    return store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def body(store: Store, i: int) -> dict[str, Any]:
    return record_at(store, A, i)


def put(store: Store, i: int, rec: dict[str, Any]) -> None:
    put_body(store, A, i, storage.canonical(rec).decode())


def test_untouched_ledger_verifies(
    ledger: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress is drawn on a terminal only
    code, out, err = run(capsys, "ledger", "verify")
    assert code == 0, out + err
    assert out.startswith("ledger OK: 9 records (0 pruned, verified by hash only), 2 checkpoints verified")
    assert f"log {A} records [##############################] 9/9\n" in err
    assert f"log {A}: verified 2 checkpoints" in err


def test_changed_record_is_named(ledger: Store, capsys: pytest.CaptureFixture[str]) -> None:
    rec = body(ledger, 3)
    rec["fields"] = ["user_id"]  # hide that the nickname was disclosed
    put(ledger, 3, rec)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert (
        f"record 3 (id {record(3)['id']}): the record's hash differs from its stored leaf hash (changed)"
        in out
    )


def test_changed_record_with_its_leaf_hash_is_still_caught(
    ledger: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = body(ledger, 6)
    rec["endpoint"] = "/v1/other"
    put(ledger, 6, rec)
    write_hashes(ledger, A, 0, {6: merkle.leaf_hash(storage.canonical(rec))})
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1  # nine leaves: no inner hash is stored (levels 1-3 are computed), the signed root
    assert f"log {A}: checkpoint 1 (tree size 9): the signed root does not match the records" in out


def test_changed_record_with_its_leaf_hash_is_caught_by_a_stored_inner_hash(
    ledger: Store, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Past 16 leaves the level-4 hashes are stored: a record changed with its leaf hash, but not the
    level-4 hash above it, is named by its leaves even before a checkpoint covers it."""
    for i in range(9, 20):
        journal(ledger, record(i, app=APP_B))
    Sequencer(ledger, Keyring(settings.signing_keys_file), settings).run_once()
    rec = body(ledger, 12)
    rec["endpoint"] = "/v1/other"
    put(ledger, 12, rec)
    write_hashes(ledger, A, 0, {12: merkle.leaf_hash(storage.canonical(rec))})
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert "the stored subtree hash at level 4 index 0 (leaves 0..15) differs from the records" in out


def test_removed_record_is_named(ledger: Store, capsys: pytest.CaptureFixture[str]) -> None:
    remove_body(ledger, A, 4)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert f"record 4 (id {record(4)['id']}): the record is missing and was not pruned (removed)" in out


def test_removed_record_with_the_rest_shifted_down_is_named(
    ledger: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(4, 8):
        put(ledger, i, body(ledger, i + 1))
    remove_body(ledger, A, 8)
    ledger.redis.set(keys.ledger_size(A), 8)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert f"record 4 (id {record(5)['id']}): the record says it is at index 5" in out


def test_reordered_records_are_named(ledger: Store, capsys: pytest.CaptureFixture[str]) -> None:
    two, five = body(ledger, 2), body(ledger, 5)
    put(ledger, 2, five)
    put(ledger, 5, two)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert f"record 2 (id {record(5)['id']}): the record says it is at index 5" in out


def test_reordered_records_with_rewritten_indexes_are_named(
    ledger: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    two, five = body(ledger, 2), body(ledger, 5)
    put(ledger, 2, {**five, "index": 2})
    put(ledger, 5, {**two, "index": 5})
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert f"record 2 (id {record(5)['id']}): this record id was sequenced at index 5" in out


def test_inserted_record_is_named(ledger: Store, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(8, 2, -1):
        put(ledger, i + 1, body(ledger, i))
    forged = {**record(99), "index": 3}
    put(ledger, 3, forged)
    ledger.redis.set(keys.ledger_size(A), 10)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert f"record 3 (id {forged['id']}): this record id was never sequenced (inserted or reordered)" in out


def test_record_past_the_end_is_named(ledger: Store, capsys: pytest.CaptureFixture[str]) -> None:
    put(ledger, 9, {**record(42), "index": 9})
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert "record 9 (id unknown): a record exists beyond the tree size (inserted)" in out


def test_fully_rebuilt_tree_is_caught_by_the_signed_checkpoint(
    ledger: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """An attacker who rewrites a record and recomputes every hash still cannot re-sign."""
    rec = body(ledger, 1)
    rec["fields"] = []
    put(ledger, 1, rec)
    leaves = [merkle.leaf_hash(stored_body(ledger, A, i).encode()) for i in range(9)]
    write_tree(ledger, A, merkle.MemoryTree(leaves).levels)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert "checkpoint 0 (tree size 5): the signed root does not match the records" in out


def test_forged_checkpoint_is_named(ledger: Store, capsys: pytest.CaptureFixture[str]) -> None:
    attacker = jwk.generate_key("OKP", "Ed25519", private=True, auto_kid=True)
    payload = {
        "origin": "x",
        "tree_size": 9,
        "root_hash": "A" * 43 + "=",
        "timestamp": int(time.time()),
        "kid": attacker.kid,
    }
    forged = jws.serialize_compact(
        {"alg": "Ed25519", "kid": attacker.kid, "typ": "broker-ledger-checkpoint+jws"},
        json.dumps(payload).encode(),
        attacker,
        algorithms=["Ed25519"],
    )
    ledger.redis.rpush(keys.ledger_checkpoints(A), forged)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert f"ledger verify FAILED: log {A}: checkpoint 2: signature does not verify" in out


def test_edited_checkpoint_payload_is_named(ledger: Store, capsys: pytest.CaptureFixture[str]) -> None:
    token = ledger.redis.lindex(keys.ledger_checkpoints(A), 0)
    head, payload, sig = token.split(".")
    ledger.redis.lset(keys.ledger_checkpoints(A), 0, f"{head}.{payload[:-2]}AA.{sig}")
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert "checkpoint 0: signature does not verify" in out


def test_prune_keeps_verification_green(
    ledger: Store,
    store: Store,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress is drawn on a terminal only
    recent = int(time.time()) - 86400
    journal(store, record(20, t=recent))
    Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
    code, out, err = run(capsys, "ledger", "prune", "--before", "30")
    assert code == 0
    assert out.startswith("pruned 9 records older than 30 days")
    assert err.endswith("pruning   [##############################] 10/10\n")
    assert stored_count(ledger, A) == 1
    assert view_indexes(ledger, A, person=ALICE) == [9]  # only the recent one stays listed
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 0, out
    assert out.startswith("ledger OK: 10 records (9 pruned, verified by hash only), 3 checkpoints verified")
    # pruning is idempotent, and tampering with a remaining record is still caught
    assert run(capsys, "ledger", "prune", "--before", "30")[1].startswith("pruned 0 records")
    rec = body(ledger, 9)
    rec["fields"] = []
    put(ledger, 9, rec)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1 and f"record 9 (id {record(20)['id']})" in out


def test_export_ndjson_and_csv(ledger: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ledger", "export", "--person", ALICE)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["index"] for r in lines] == [1, 3, 5, 6, 7, 8]
    # stdout is only data; the summary goes to stderr
    assert err.startswith(f"exported 6 records of person {ALICE} as ndjson in ")
    code, out, _ = run(capsys, "ledger", "export", "--app", APP_B, "--format", "csv")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].startswith("index,id,time,app,developer")
    assert [row.split(",")[0] for row in rows[1:]] == ["5", "6", "7", "8"]
    code, out, _ = run(capsys, "ledger", "export", "--org", ACME)
    assert [json.loads(line)["index"] for line in out.splitlines()] == [3]
    code, _, err = run(capsys, "ledger", "export", "--org", ACME, "--since", "yesterday")
    assert code == 2 and "since" in err


def test_export_shows_a_running_count_on_large_exports(
    ledger: Store,
    store: Store,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress is drawn on a terminal only
    for i in range(100, 100 + 2500):
        journal(store, record(i, person=CAROL))
    Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
    code, out, err = run(capsys, "ledger", "export", "--person", CAROL, "--format", "csv")
    assert code == 0
    assert len(out.splitlines()) == 1 + 2500 + 3  # header, the new records, CAROL's three earlier ones
    assert "\rexported 1000\rexported 2000\r" in err
    assert err.endswith(f"exported 2503 records of person {CAROL} as csv in " + err.rsplit(" in ", 1)[1])


def test_verify_as_a_subprocess(ledger: Store, redis_server: Any, settings: Settings, tmp_path: Any) -> None:
    import subprocess
    import sys

    from tests.support.environment import ROOT, broker_env

    env = broker_env(tmp_path, BROKER_REDIS_URL=redis_server.url, BROKER_DATA_DIR=str(settings.data_dir))
    ok = subprocess.run(
        [sys.executable, "-m", "broker", "ledger", "verify"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ledger OK: 9 records")
    put_body(ledger, A, 2, "{}")
    bad = subprocess.run(
        [sys.executable, "-m", "broker", "ledger", "verify"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert (
        f"record 2 (id {record(2)['id']}): the stored record is not a disclosure record (changed)"
        in bad.stdout
    )


def test_prune_leaves_an_unreadable_record_alone(ledger: Store, capsys: pytest.CaptureFixture[str]) -> None:
    put_body(ledger, A, 0, "not json")
    code, out, err = run(capsys, "ledger", "prune", "--before", "30")
    assert code == 0 and out.startswith("pruned 8 records")
    assert "record 0 is not a valid record; left alone" in err
    code, out, _ = run(capsys, "ledger", "verify")
    assert (
        code == 1 and "record 0 (id " + record(0)["id"] + "): the stored record is not JSON (changed)" in out
    )


def test_record_hidden_from_a_persons_view_is_named(
    ledger: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    drop_from_view(ledger, A, 3, person=ALICE)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert f"record 3 (id {record(3)['id']}): missing from the reader index person={ALICE} (hidden" in out


def test_checkpoints_signed_by_a_retired_key_still_verify(
    ledger: Store, store: Store, settings: Settings, capsys: pytest.CaptureFixture[str], client: Any
) -> None:
    """Rotating the ledger key twice past its overlap forgets its private part, never its public one."""
    keyring = Keyring(settings.signing_keys_file)
    old_kid = keyring.signing_key("Ed25519").kid
    keyring.rotate("Ed25519", 0)  # the old key's overlap ends at once
    time.sleep(1.1)
    keyring.rotate("Ed25519", 0)  # a later rotation tidies expired keys
    journal(store, record(30))
    Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()  # signed by the newest key
    saved = json.loads(settings.signing_keys_file.read_text())["keys"]
    retired = [k for k in saved if k["kid"] == old_kid]
    assert len(retired) == 1 and "d" not in retired[0]  # it can no longer sign
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 0, out
    assert "3 checkpoints verified" in out
    published = {k["kid"] for k in client.get("/ledger/v1/keys").get_json()["keys"]}
    assert old_kid in published  # anyone can still check the old checkpoints
    assert old_kid not in {k["kid"] for k in client.get("/oauth/jwks").get_json()["keys"]}


# -- every log is checked ----------------------------------------------------------------------

PEOPLE = ["usr_" + c * 16 for c in "123456789abc"]  # spread over many of the 16 logs


@pytest.fixture
def spread(ledger: Store, store: Store, settings: Settings) -> dict[str, list[int]]:
    """Records about twelve people on top of ``ledger``: log -> record numbers in it, in order."""
    sequencer = Sequencer(store, Keyring(settings.signing_keys_file), settings)
    by_log: dict[str, list[int]] = {}
    for n in range(200, 248):
        person = PEOPLE[n % len(PEOPLE)]
        journal(store, record(n, person=person))
        by_log.setdefault(log_of(person, store), []).append(n)
    sequencer.run_once()
    assert len(by_log) >= 6
    return by_log


def _tamper(store: Store, log: str, kind: str) -> int:
    """Tamper with log ``log``; returns the index the failure is about."""

    def get(i: int) -> dict[str, Any]:
        return record_at(store, log, i)

    def set_(i: int, rec: dict[str, Any]) -> None:
        put_body(store, log, i, storage.canonical(rec).decode())

    size = storage.size(store, log)
    if kind == "changed":
        set_(1, {**get(1), "fields": []})
    elif kind == "removed":
        remove_body(store, log, 1)
    elif kind == "reordered":
        first, second = get(0), get(1)
        set_(0, second)
        set_(1, first)
        return 0
    elif kind == "inserted":
        for i in range(size - 1, 0, -1):
            set_(i + 1, get(i))
        set_(1, {**record(999, person=get(0)["person"]), "index": 1, "log": log})
        store.redis.set(keys.ledger_size(log), size + 1)
    return 1


@pytest.mark.parametrize("kind", ["changed", "removed", "reordered", "inserted"])
@pytest.mark.parametrize("which", [0, 1, -1])
def test_tampering_in_any_log_is_caught_and_names_the_log(
    spread: dict[str, list[int]], store: Store, capsys: pytest.CaptureFixture[str], kind: str, which: int
) -> None:
    logs_with_records = sorted(log for log in spread if log != A)
    log = logs_with_records[which]
    assert run(capsys, "ledger", "verify")[0] == 0
    index = _tamper(store, log, kind)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert f"ledger verify FAILED: log {log}: record {index} " in out


def test_a_record_moved_to_another_log_is_caught(
    spread: dict[str, list[int]], store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record copied into another log (with that log's name, index and hashes) is not where its
    person's records are: readers of that person would never see it."""
    source, target = sorted(log for log in spread if log != A)[:2]
    moved = record_at(store, source, 0)
    size = storage.size(store, target)
    forged = {**moved, "index": size, "log": target}
    body = storage.canonical(forged)
    put_body(store, target, size, body.decode())
    store.redis.hset(keys.ledger_ids(target, size // storage.ID_BLOCK), forged["id"], str(size))
    for view_key, entry in views.entries(forged, target, size, forged["time"]):
        store.redis.append(view_key, entry)
    leaves = [merkle.leaf_hash(stored_body(store, target, i).encode()) for i in range(size + 1)]
    write_tree(store, target, merkle.MemoryTree(leaves).levels)
    store.redis.set(keys.ledger_size(target), size + 1)
    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 1
    assert f"log {target}: record {size} (id {moved['id']}): the record belongs in log" in out
