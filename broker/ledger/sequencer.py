"""The sequencer: moves disclosure records from the per-app journals into the global Merkle log.

The gate commits each record to its app's journal stream (``{a:<client_id>}`` slot, one round
trip with the token check). The sequencer, one at a time across all processes (``SET NX PX``
lock), reads the journals with XRANGE, orders the records deterministically (time, client id,
stream id), appends them to the log in ONE Lua script on ``{ledger}`` keys, and only then deletes
them from the journals. A record id already in ``ledger_sequenced`` is never appended again, so a
crash between the two steps just means the next run deletes what was already moved.

SHA-256 is computed here, not in Lua; the script refuses the write if the lock was lost or the
tree grew meanwhile, so the precomputed hashes always extend the tree they were computed for.

A record whose request was refused after it was written (WAIT did not confirm it, the connection
broke mid-write, or the response failed afterwards) is *voided* by the gate
(``keys.journal_voids``): it is not a disclosure. With WAIT configured the sequencer leaves journal
entries alone until they are older than the WAIT timeout plus a margin (``holdback_ms``), so the
void is normally there first and the record is dropped, never sequenced. Voids the gate could not
confirm are written again at the start of every run (``gate.retry_unconfirmed_voids``), so after a
failover they reach the promoted primary. A void
that arrives after its record was sequenced (the ledger is append-only) gets a *correction
record* (``"corrects": <record id>``, ``"delivered": false``) and ``ledger_voided`` maps the
original to it; readers show both as not delivered.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.gate.disclosure import retry_unconfirmed_voids
from broker.ledger import checkpoints, merkle, storage
from broker.observability import metrics
from broker.storage import keys
from broker.storage.store import Store

log = logging.getLogger("broker.ledger.sequencer")

REQUIRED = ("id", "time", "app", "person")
HOLDBACK_MARGIN_MS = 2000
_Voids = dict[str, dict[str, dict[str, Any]]]  # client id -> request id -> {"time", "records"}
VOID_SETTLE_MS = 60000  # a void is kept this long past the holdback before it may be forgotten


@dataclass
class RunResult:
    locked: bool = True  # False: another sequencer holds the lock; nothing was done
    appended: int = 0
    removed: int = 0  # journal entries deleted (appended now, already sequenced, or rejected)
    rejected: int = 0
    voided: int = 0  # journal entries dropped because their request was refused
    corrected: int = 0  # correction records appended for voided records already in the log
    checkpoint: checkpoints.Checkpoint | None = None
    indexes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Entry:
    client_id: str
    entry_id: str
    record: dict[str, Any]

    @property
    def order(self) -> tuple[Any, ...]:
        ms, _, seq = self.entry_id.partition("-")
        return (self.record["time"], self.client_id, int(ms), int(seq or 0))


def _valid(record: Any) -> bool:
    if not isinstance(record, dict) or any(k not in record for k in REQUIRED) or "index" in record:
        return False
    if not isinstance(record["time"], int | float) or isinstance(record["time"], bool):
        return False
    return all(isinstance(record[k], str) and record[k] for k in ("id", "app", "person"))


class Sequencer:
    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        settings: Settings,
        *,
        batch_size: int = 500,
        max_batches: int = 20,
        lock_ms: int = 30000,
        holdback_ms: int | None = None,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.settings = settings
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.lock_ms = lock_ms
        if holdback_ms is None:
            holdback_ms = store.wait_timeout_ms + HOLDBACK_MARGIN_MS if store.wait_replicas > 0 else 0
        self.holdback_ms = holdback_ms

    # -- public -----------------------------------------------------------------------------------

    def run_once(self) -> RunResult:
        """Drain the journals (up to ``max_batches`` batches) and sign a checkpoint if the tree grew."""
        try:
            retry_unconfirmed_voids(self.store)  # this process's voids first, whoever sequences
        except Exception:  # never let a void retry stop sequencing; it is tried again next run
            log.exception("void retry failed")
        token = secrets.token_hex(16)
        if not self.store.redis.set(keys.ledger_lock(), token, nx=True, px=self.lock_ms):
            return RunResult(locked=False)
        result = RunResult()
        try:
            voids = self._load_voids()
            cutoff_ms = self._now_ms() - self.holdback_ms if self.holdback_ms > 0 else None
            for _ in range(self.max_batches):
                more = self._batch(token, result, voids, cutoff_ms)
                self.store.lua("pexpire_if_equals")(keys=[keys.ledger_lock()], args=[token, self.lock_ms])
                if not more:
                    break
            if voids:
                self._settle_voids(token, result, voids)
            last = checkpoints.latest(self.store)
            if last is None or storage.size(self.store) != last.tree_size:
                result.checkpoint = checkpoints.sign(self.store, self.keyring, self.settings)
        finally:
            self.store.lua("delete_if_equals")(keys=[keys.ledger_lock()], args=[token])
        return result

    def run_forever(self, stop_event: threading.Event) -> None:
        """Sequence and checkpoint every ``checkpoint_seconds`` until ``stop_event`` is set.

        Redis outages are logged and retried; records wait safely in the journals meanwhile.
        """
        interval = float(self.settings.checkpoint_seconds)
        while not stop_event.is_set():
            started = time.monotonic()
            try:
                result = self.run_once()
                metrics.sequencer_backlog(self.store.redis, keys.journals_index(), keys.journal)
                if result.appended:
                    log.info(
                        "sequenced %d records; tree size %s",
                        result.appended,
                        result.checkpoint.tree_size if result.checkpoint else "?",
                    )
            except redis.RedisError as exc:
                log.error("sequencer run failed: %s: %s", type(exc).__name__, exc)
            except Exception:  # the thread must outlive any one bad run; records wait in the journals
                log.exception("sequencer run failed")
            stop_event.wait(max(0.05, interval - (time.monotonic() - started)))

    # -- one batch --------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        """The primary's clock (stream entry ids are made from it)."""
        now = self.store.redis.time()
        if isinstance(now, list | tuple) and len(now) == 2:
            return int(now[0]) * 1000 + int(now[1]) // 1000
        return int(time.time() * 1000)  # a cluster answers per node; our clock is close enough

    def _load_voids(self) -> dict[str, dict[str, dict[str, Any]]]:
        """client id -> request id -> ``{"time", "records"}`` for every app with voids."""
        r = self.store.redis
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for client_id in sorted(r.smembers(keys.voids_index())):
            found: dict[str, dict[str, Any]] = {}
            for request_id, raw in r.hgetall(keys.journal_voids(client_id)).items():
                try:
                    value = json.loads(raw)
                    found[request_id] = {"time": float(value["time"]), "records": int(value["records"])}
                except (ValueError, TypeError, KeyError):
                    found[request_id] = {"time": 0.0, "records": 1}
            if found:
                out[client_id] = found
            else:
                self._forget_voids_if_empty(client_id)
        return out

    def _read_journals(
        self, result: RunResult, voids: dict[str, dict[str, dict[str, Any]]], cutoff_ms: int | None
    ) -> tuple[list[_Entry], dict[str, list[str]], bool]:
        r = self.store.redis
        entries: list[_Entry] = []
        done: dict[str, list[str]] = {}  # journal entries to delete without appending
        read = 0
        for client_id in sorted(r.smembers(keys.journals_index())):
            batch = r.xrange(keys.journal(client_id), "-", "+", count=self.batch_size)
            if not batch:
                self._forget_if_empty(client_id)
            if cutoff_ms is not None:  # too young: a void for it may still be on its way
                batch = [(eid, f) for eid, f in batch if int(eid.partition("-")[0]) <= cutoff_ms]
            read = max(read, len(batch))
            voided = voids.get(client_id, {})
            for entry_id, fields in batch:
                raw = fields.get("r", "")
                try:
                    record = json.loads(raw)
                except ValueError:
                    record = None
                if not _valid(record):
                    log.error("journal %s entry %s is not a valid record; set aside", client_id, entry_id)
                    r.rpush(
                        keys.ledger_rejected(), json.dumps({"app": client_id, "entry": entry_id, "r": raw})
                    )
                    done.setdefault(client_id, []).append(entry_id)
                    result.rejected += 1
                    continue
                if record.get("request_id") in voided:
                    done.setdefault(client_id, []).append(entry_id)  # refused: not a disclosure
                    result.voided += 1
                    continue
                entries.append(_Entry(client_id, entry_id, record))
        entries.sort(key=lambda e: e.order)
        more = read >= self.batch_size or len(entries) > self.batch_size
        return entries[: self.batch_size], done, more

    def _batch(
        self,
        token: str,
        result: RunResult,
        voids: dict[str, dict[str, dict[str, Any]]] | None = None,
        cutoff_ms: int | None = None,
    ) -> bool:
        """One batch; returns whether the journals may hold more."""
        entries, done, more = self._read_journals(result, voids or {}, cutoff_ms)
        if entries:
            seen = self.store.redis.hmget(keys.ledger_sequenced(), [e.record["id"] for e in entries])
            fresh: list[_Entry] = []
            ids: set[str] = set()
            for entry, already in zip(entries, seen, strict=True):
                if already is not None or entry.record["id"] in ids:
                    done.setdefault(entry.client_id, []).append(entry.entry_id)
                else:
                    ids.add(entry.record["id"])
                    fresh.append(entry)
            if fresh:
                result.indexes.extend(self._append(token, [e.record for e in fresh]))
                result.appended += len(fresh)
                for entry in fresh:
                    done.setdefault(entry.client_id, []).append(entry.entry_id)
        self._delete_moved(done)
        result.removed += sum(len(v) for v in done.values())
        return more

    def _append(self, token: str, records: list[dict[str, Any]]) -> list[int]:
        start = storage.size(self.store)
        edge = storage.frontier(self.store, start)
        key_list = [keys.ledger_lock(), keys.ledger_size(), keys.ledger_sequenced(), keys.ledger_records()]
        key_pos: dict[str, int] = {k: i + 1 for i, k in enumerate(key_list)}

        def pos(key: str) -> str:
            if key not in key_pos:
                key_list.append(key)
                key_pos[key] = len(key_list)
            return str(key_pos[key])

        ops: list[list[str]] = []
        n = start
        indexes = []
        for record in records:
            body = storage.canonical({**record, "index": n})
            leaf = merkle.leaf_hash(body)
            ops.append(["HSET", pos(keys.ledger_records()), str(n), body.decode()])
            ops.append(["HSET", pos(keys.ledger_sequenced()), record["id"], str(n)])
            if isinstance(record.get("corrects"), str):
                ops.append(["HSET", pos(keys.ledger_voided()), record["corrects"], str(n)])
            level, idx, h = 0, n, leaf
            ops.append(["HSET", pos(keys.ledger_level(0)), str(idx), h.hex()])
            while idx & 1:
                h = merkle.node_hash(edge.pop(level), h)
                level, idx = level + 1, idx >> 1
                ops.append(["HSET", pos(keys.ledger_level(level)), str(idx), h.hex()])
            edge[level] = h
            for index_key in storage.index_keys(record):
                ops.append(["ZADD", pos(index_key), repr(float(record["time"])), storage.member(n)])
            indexes.append(n)
            n += 1
        self.store.lua("ledger_append")(
            keys=key_list,
            args=[token, start, n, json.dumps([r["id"] for r in records]), json.dumps(ops)],
        )
        self.store.confirm_durable(keys.ledger_size())
        return indexes

    def _delete_moved(self, done: dict[str, list[str]]) -> None:
        """Second step: remove moved entries from each journal (each in its own app slot)."""
        for client_id, entry_ids in done.items():
            if entry_ids:
                self.store.redis.xdel(keys.journal(client_id), *entry_ids)

    def _settle_voids(
        self, token: str, result: RunResult, voids: dict[str, dict[str, dict[str, Any]]]
    ) -> None:
        """Correct voided records that were sequenced before their void arrived; forget old voids."""
        r = self.store.redis
        now = time.time()
        for client_id, by_request in voids.items():
            record_ids = [
                f"{request_id}-{i}"
                for request_id, void in sorted(by_request.items())
                for i in range(1, max(1, min(int(void["records"]), 10000)) + 1)
            ]
            corrections: list[dict[str, Any]] = []
            for start in range(0, len(record_ids), self.batch_size):
                chunk = record_ids[start : start + self.batch_size]
                indexes = r.hmget(keys.ledger_sequenced(), chunk)
                corrected = r.hmget(keys.ledger_voided(), chunk)
                todo = [(rid, i) for rid, i, c in zip(chunk, indexes, corrected, strict=True) if i and not c]
                if not todo:
                    continue
                bodies = r.hmget(keys.ledger_records(), [i for _, i in todo])
                for (_rid, index), body in zip(todo, bodies, strict=True):
                    if body is None:
                        continue  # pruned: nothing left to show as delivered
                    corrections.append(correction_for(json.loads(body), int(index), now))
            for start in range(0, len(corrections), self.batch_size):
                chunk_records = corrections[start : start + self.batch_size]
                result.indexes.extend(self._append(token, chunk_records))
                result.appended += len(chunk_records)
                result.corrected += len(chunk_records)
            self._forget_settled_voids(client_id, by_request, now)

    def _forget_settled_voids(
        self, client_id: str, by_request: dict[str, dict[str, Any]], now: float
    ) -> None:
        """A void may go once its records can no longer be in the journal unseen: it is older than
        the holdback plus a settling time, and the journal holds nothing from before it."""
        r = self.store.redis
        oldest = r.xrange(keys.journal(client_id), "-", "+", count=1)
        oldest_ms = int(oldest[0][0].partition("-")[0]) if oldest else None
        settle_s = (self.holdback_ms + VOID_SETTLE_MS) / 1000
        old = [
            request_id
            for request_id, void in by_request.items()
            if now - void["time"] > settle_s
            and (oldest_ms is None or oldest_ms > (void["time"] + VOID_SETTLE_MS / 1000) * 1000)
        ]
        if old:
            r.hdel(keys.journal_voids(client_id), *old)
            if len(old) == len(by_request):
                self._forget_voids_if_empty(client_id)

    def _forget_voids_if_empty(self, client_id: str) -> None:
        r = self.store.redis
        r.srem(keys.voids_index(), client_id)
        if r.hlen(keys.journal_voids(client_id)):
            r.sadd(keys.voids_index(), client_id)

    def _forget_if_empty(self, client_id: str) -> None:
        # SREM first, then look: a gate that appends meanwhile has SADDed before its XADD, so either
        # we see its entry and re-add, or its SADD lands after our SREM.
        r = self.store.redis
        r.srem(keys.journals_index(), client_id)
        if r.xlen(keys.journal(client_id)):
            r.sadd(keys.journals_index(), client_id)


def correction_for(original: dict[str, Any], index: int, now: float) -> dict[str, Any]:
    """The record appended when a sequenced record turns out not to have been delivered: same
    person, app and views, so it stands next to the original wherever that is read."""
    record = {k: v for k, v in original.items() if k != "index"}
    record.update(
        {
            "id": f"{original['id']}-void",
            "time": now,
            "corrects": original["id"],
            "corrects_index": index,
            "delivered": False,
        }
    )
    return record


def start_in_background(
    store: Store, keyring: Keyring, settings: Settings, stop: threading.Event | None = None
) -> threading.Event:
    """Run the sequencer in a daemon thread beside a server worker or ``broker worker``.

    Every process runs one; the Redis lock lets exactly one of them sequence at a time, so the
    ledger keeps moving as long as any of them is alive. Returns the event that stops it.
    """
    stop = stop or threading.Event()
    thread = threading.Thread(
        target=Sequencer(store, keyring, settings).run_forever,
        args=(stop,),
        name="ledger-sequencer",
        daemon=True,
    )
    thread.start()
    return stop
