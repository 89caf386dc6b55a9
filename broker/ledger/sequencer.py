"""The sequencer: moves disclosure records from the per-app journals into the ledger's logs.

The gate commits each record to its app's journal for the record's log (``{a:<client_id>}`` slot,
one round trip with the token check; ``broker.ledger.logs`` says which log). Each log has its own
sequencer lock (``SET NX PX`` on the log's own slot), so different processes or threads sequence
different logs at once and no single process or slot is in the path of every record. A log's
sequencer reads the journals in that log's journals index with XRANGE, orders the records
deterministically (time, client id, stream id), appends them to the log in ONE Lua script on
``{ledger:NN.S}`` keys, and only then deletes them from the journals. A record id already in
the id maps of the log's recent leaves (``storage.find_ids``: only the maps whose newest ledger
time is at least the record's, which for records that just arrived are the newest one or two) is
never appended again, so a crash between the two steps just means the next run deletes what was
already moved.

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
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.gate.disclosure import retry_unconfirmed_voids
from broker.ledger import checkpoints, merkle, storage, views
from broker.ledger import logs as ledger_logs
from broker.ledger.checkpoints import Checkpoint
from broker.observability import metrics
from broker.storage import keys
from broker.storage.store import Store

log = logging.getLogger("broker.ledger.sequencer")

REQUIRED = ("id", "time", "app", "person")
HOLDBACK_MARGIN_MS = 2000
_Voids = dict[str, dict[str, dict[str, Any]]]  # client id -> request id -> {"time", "records"}
THIN_SECONDS = 3600  # how often each process thins a log's old checkpoints
SWEEP_SECONDS = 300  # how often each process looks for journals missing from their index
REJECTED_KEEP = 1000  # invalid journal entries kept per log for the operator (newest; 4 KiB each at most)
VOID_SETTLE_MS = 60000  # a void is kept this long past the holdback before it may be forgotten


@dataclass
class RunResult:
    """What one run did (over every log it could lock, or one log for ``run_log``)."""

    locked: bool = True  # False: another sequencer held every lock tried; nothing was done
    appended: int = 0
    removed: int = 0  # journal entries deleted (appended now, already sequenced, or rejected)
    rejected: int = 0
    voided: int = 0  # journal entries dropped because their request was refused
    corrected: int = 0  # correction records appended for voided records already in the log
    signed: dict[str, Checkpoint] = field(default_factory=dict)  # log -> checkpoint signed now
    indexes: dict[str, list[int]] = field(default_factory=dict)  # log -> leaf indexes appended
    busy: list[str] = field(default_factory=list)  # logs another sequencer held

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint signed by this run when it signed exactly one (tests, single-log callers)."""
        return next(iter(self.signed.values())) if len(self.signed) == 1 else None

    def add(self, other: RunResult, log: str) -> None:
        for name in ("appended", "removed", "rejected", "voided", "corrected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.signed.update(other.signed)
        if other.indexes.get(log):
            self.indexes[log] = other.indexes[log]
        if not other.locked:
            self.busy.append(log)


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
    if not math.isfinite(record["time"]):  # JSON's NaN and Infinity: no time to order it by
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
        self._start = secrets.randbelow(1 << 16)  # processes start at different logs
        self._thinned: dict[str, float] = {}  # log -> monotonic time of the last thinning

    # -- public -----------------------------------------------------------------------------------

    def logs(self) -> list[str]:
        return ledger_logs.names(self.store, getattr(self.settings, "ledger_logs", None))

    def run_once(self) -> RunResult:
        """Sequence every log whose lock is free (see :meth:`run_log`), starting at a different log
        in each process and run, so several sequencers share the logs rather than queue."""
        try:
            retry_unconfirmed_voids(self.store)  # this process's voids first, whoever sequences
        except Exception:  # never let a void retry stop sequencing; it is tried again next run
            log.exception("void retry failed")
        names = self.logs()
        self._start += 1
        order = names[self._start % len(names) :] + names[: self._start % len(names)]
        voids = self._load_voids()
        total = RunResult()
        for name in order:
            total.add(self.run_log(name, voids), name)
        total.locked = len(total.busy) < len(order)
        return total

    def run_log(self, log_name: str, voids: _Voids | None = None) -> RunResult:
        """Drain one log's journals (up to ``max_batches`` batches) under that log's lock and sign a
        checkpoint of the log if its tree grew."""
        lock = keys.ledger_lock(log_name)
        token = secrets.token_hex(16)
        if not self.store.redis.set(lock, token, nx=True, px=self.lock_ms):
            return RunResult(locked=False)
        result = RunResult()
        try:
            if voids is None:
                voids = self._load_voids()
            cutoff_ms = self._now_ms() - self.holdback_ms if self.holdback_ms > 0 else None
            for _ in range(self.max_batches):
                more = self._batch(log_name, token, result, voids, cutoff_ms)
                self.store.lua("pexpire_if_equals")(keys=[lock], args=[token, self.lock_ms])
                if not more:
                    break
            if voids:
                self._settle_voids(log_name, token, result, voids)
            last = checkpoints.latest(self.store, log_name)
            size = storage.size(self.store, log_name)
            if size != (last.tree_size if last is not None else 0):  # an empty log signs nothing
                result.signed[log_name] = checkpoints.sign(self.store, self.keyring, self.settings, log_name)
            self._maybe_thin(log_name)
        finally:
            self.store.lua("delete_if_equals")(keys=[lock], args=[token])
        return result

    def _maybe_thin(self, log_name: str) -> None:
        """Thin the log's old checkpoints, at most every THIN_SECONDS per process and log."""
        now = time.monotonic()
        if now - self._thinned.get(log_name, -THIN_SECONDS) < THIN_SECONDS:
            return
        self._thinned[log_name] = now
        hours = getattr(self.settings, "ledger_checkpoint_retention_hours", 24)
        removed = checkpoints.thin(self.store, log_name, retention_seconds=hours * 3600)
        if removed:
            log.info("log %s: thinned %d checkpoints older than %d hours", log_name, removed, hours)

    def run_forever(self, stop_event: threading.Event) -> None:
        """Sequence and checkpoint every ``checkpoint_seconds`` until ``stop_event`` is set.

        Redis outages are logged and retried; records wait safely in the journals meanwhile.
        """
        interval = float(self.settings.checkpoint_seconds)
        swept = time.monotonic()
        while not stop_event.is_set():
            started = time.monotonic()
            try:
                if started - swept > SWEEP_SECONDS:
                    swept = started
                    self.sweep()
                result = self.run_once()
                self.measure_backlog()
                if result.appended:
                    log.info("sequenced %d records into %d logs", result.appended, len(result.signed))
            except redis.RedisError as exc:
                log.error("sequencer run failed: %s: %s", type(exc).__name__, exc)
            except Exception:  # the thread must outlive any one bad run; records wait in the journals
                log.exception("sequencer run failed")
            stop_event.wait(max(0.05, interval - (time.monotonic() - started)))

    def sweep(self) -> int:
        """Find journals missing from their log's journals index and add them; returns how many.

        The gate writes the index after its records (on a cluster, in another slot): a process
        that died between the two, or an index write that failed, leaves a journal the index does
        not name until the gate's announcement mark expires and another record arrives. This
        looks at every app's journal of every log (a pipeline of EXISTS), every
        ``SWEEP_SECONDS`` per process."""
        r = self.store.redis
        names = self.logs()
        apps = list(r.zrange(keys.apps_all(), 0, -1))
        found = 0
        for start in range(0, len(apps), 500):
            chunk = apps[start : start + 500]
            pipe = r.pipeline(transaction=False)
            for client_id in chunk:
                for name in names:
                    pipe.xlen(keys.journal(client_id, name))
            lengths = iter(pipe.execute())
            missing = [(c, n) for c in chunk for n in names if next(lengths)]
            if missing:
                pipe = r.pipeline(transaction=False)
                for client_id, name in missing:
                    pipe.sadd(keys.journals_index(name), client_id)
                found += sum(int(x) for x in pipe.execute())
        if found:
            log.warning("found %d journals missing from their log's journals index", found)
        return found

    def measure_backlog(self) -> None:
        """The records waiting in every log's journals (a gauge)."""
        r = self.store.redis
        pipe = r.pipeline(transaction=False)
        names = self.logs()
        for name in names:
            pipe.smembers(keys.journals_index(name))
        journals = [
            keys.journal(c, name) for name, apps in zip(names, pipe.execute(), strict=True) for c in apps
        ]
        metrics.sequencer_backlog(r, journals)

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
        self, log_name: str, result: RunResult, voids: _Voids, cutoff_ms: int | None
    ) -> tuple[list[_Entry], dict[str, list[str]], bool]:
        r = self.store.redis
        entries: list[_Entry] = []
        done: dict[str, list[str]] = {}  # journal entries to delete without appending
        read = 0
        clients = sorted(r.smembers(keys.journals_index(log_name)))
        pipe = r.pipeline(transaction=False)
        for client_id in clients:
            pipe.xrange(keys.journal(client_id, log_name), "-", "+", count=self.batch_size)
        batches = pipe.execute() if clients else []
        count = ledger_logs.count(self.store)
        for client_id, batch in zip(clients, batches, strict=True):
            if not batch:
                self._forget_if_empty(client_id, log_name)
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
                if not _valid(record) or ledger_logs.log_of(record["person"], count) != log_name:
                    log.error("journal %s entry %s is not a valid record; set aside", client_id, entry_id)
                    rejected = keys.ledger_rejected(log_name)
                    r.rpush(rejected, json.dumps({"app": client_id, "entry": entry_id, "r": raw[:4096]}))
                    r.ltrim(rejected, -REJECTED_KEEP, -1)
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
        log_name: str,
        token: str,
        result: RunResult,
        voids: _Voids | None = None,
        cutoff_ms: int | None = None,
    ) -> bool:
        """One batch; returns whether the journals may hold more."""
        entries, done, more = self._read_journals(log_name, result, voids or {}, cutoff_ms)
        if entries:
            recent = storage.id_blocks(storage.size(self.store, log_name), storage.RECENT_LEAVES)
            seen = storage.find_ids(
                self.store,
                log_name,
                [e.record["id"] for e in entries],
                recent,
                [float(e.record["time"]) for e in entries],
            )
            fresh: list[_Entry] = []
            ids: set[str] = set()
            for entry, already in zip(entries, seen, strict=True):
                if already is not None or entry.record["id"] in ids:
                    done.setdefault(entry.client_id, []).append(entry.entry_id)
                else:
                    ids.add(entry.record["id"])
                    fresh.append(entry)
            if fresh:
                appended = self._append(log_name, token, [e.record for e in fresh])
                result.indexes.setdefault(log_name, []).extend(appended)
                result.appended += len(fresh)
                for entry in fresh:
                    done.setdefault(entry.client_id, []).append(entry.entry_id)
        if done:
            self._delete_moved(log_name, done)
        result.removed += sum(len(v) for v in done.values())
        return more

    def _append(self, log_name: str, token: str, records: list[dict[str, Any]]) -> list[int]:
        start = storage.size(self.store, log_name)
        edge = storage.frontier(self.store, log_name, start)
        clock = float(self.store.redis.get(keys.ledger_clock(log_name)) or 0.0)
        key_list = [
            keys.ledger_lock(log_name),
            keys.ledger_size(log_name),
            keys.ledger_ids(log_name, start // storage.ID_BLOCK),
            keys.ledger_clock(log_name),
        ]
        key_pos: dict[str, int] = {k: i + 1 for i, k in enumerate(key_list)}

        def pos(key: str) -> str:
            if key not in key_pos:
                key_list.append(key)
                key_pos[key] = len(key_list)
            return str(key_pos[key])

        ops: list[list[str]] = []
        blob = bytearray()  # the ops' binary values, one after the other (ledger_append.lua ARGV[7])

        def value(data: bytes) -> str:
            blob.extend(data)
            return str(len(data))

        n = start
        indexes = []
        for record in records:
            body = storage.canonical({**record, "index": n, "log": log_name})
            leaf = merkle.leaf_hash(body)
            bodies = pos(keys.ledger_bodies(log_name, storage.body_at(n)[0]))  # in leaf order
            ops.append(["RPUSHBIN", bodies, "", value(storage.pack_body(body))])
            ops.append(["HSET", pos(keys.ledger_ids(log_name, n // storage.ID_BLOCK)), record["id"], str(n)])
            if isinstance(record.get("corrects"), str):
                ops.append(["HSET", pos(keys.ledger_voided(log_name)), record["corrects"], str(n)])
            level, idx, h = 0, n, leaf
            command, offset, data = storage.hash_write(idx, h)
            ops.append([command, pos(keys.ledger_hashes(0, log_name)), str(offset), value(data)])
            while idx & 1:
                h = merkle.node_hash(edge.pop(level), h)
                level, idx = level + 1, idx >> 1
                if storage.stored_level(level):  # levels 1-3: computed from the leaves when read
                    command, offset, data = storage.hash_write(idx, h)
                    ops.append([command, pos(keys.ledger_hashes(level, log_name)), str(offset), value(data)])
            edge[level] = h
            clock = views.ledger_time(clock, record["time"])  # views are in its order
            for view_key, entry in views.entries(record, log_name, n, clock):
                ops.append(["VIEWBIN", pos(view_key), "", value(entry)])
            indexes.append(n)
            n += 1
        for block in range(start // storage.ID_BLOCK, (n - 1) // storage.ID_BLOCK + 1):  # its newest time
            command, offset, data = storage.id_time_write(block, clock)
            ops.append([command, pos(keys.ledger_id_times(log_name)), str(offset), value(data)])
        ops.append(["SET", pos(keys.ledger_clock(log_name)), "", repr(clock)])
        self.store.lua("ledger_append")(
            keys=key_list,
            args=[
                token,
                start,
                n,
                json.dumps([r["id"] for r in records]),
                json.dumps(ops),
                # the last batch's maps: a second guard (the maps of RECENT_LEAVES were read above,
                # under the same lock), a few hundred lookups instead of tens of thousands
                json.dumps(storage.id_blocks(start, self.batch_size)),
                bytes(blob),
            ],
        )
        self.store.confirm_durable(keys.ledger_size(log_name))
        return indexes

    def _delete_moved(self, log_name: str, done: dict[str, list[str]]) -> None:
        """Second step: remove moved entries from each journal (each in its own app slot)."""
        pipe = self.store.redis.pipeline(transaction=False)
        queued = False
        for client_id, entry_ids in done.items():
            if entry_ids:
                pipe.xdel(keys.journal(client_id, log_name), *entry_ids)
                queued = True
        if queued:
            pipe.execute()

    def _settle_voids(self, log_name: str, token: str, result: RunResult, voids: _Voids) -> None:
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
            recent = storage.id_blocks(storage.size(self.store, log_name), storage.VOID_LEAVES)
            for start in range(0, len(record_ids), self.batch_size):
                chunk = record_ids[start : start + self.batch_size]
                indexes = storage.find_ids(self.store, log_name, chunk, recent)
                corrected = r.hmget(keys.ledger_voided(log_name), chunk)
                found = zip(chunk, indexes, corrected, strict=True)
                todo = [(rid, i) for rid, i, c in found if i is not None and not c]
                if not todo:
                    continue
                bodies = storage.read_bodies(self.store, log_name, [int(i) for _, i in todo])
                for (_rid, index), body in zip(todo, bodies, strict=True):
                    if body is None:
                        continue  # pruned: nothing left to show as delivered
                    corrections.append(correction_for(json.loads(body), int(index), now))
            for start in range(0, len(corrections), self.batch_size):
                chunk_records = corrections[start : start + self.batch_size]
                appended = self._append(log_name, token, chunk_records)
                result.indexes.setdefault(log_name, []).extend(appended)
                result.appended += len(chunk_records)
                result.corrected += len(chunk_records)
            self._forget_settled_voids(client_id, by_request, now)

    def _forget_settled_voids(
        self, client_id: str, by_request: dict[str, dict[str, Any]], now: float
    ) -> None:
        """A void may go once its records can no longer be in the journal unseen: it is older than
        the holdback plus a settling time, and the journal holds nothing from before it."""
        r = self.store.redis
        pipe = r.pipeline(transaction=False)
        for name in self.logs():
            pipe.xrange(keys.journal(client_id, name), "-", "+", count=1)
        firsts = [int(found[0][0].partition("-")[0]) for found in pipe.execute() if found]
        oldest_ms = min(firsts) if firsts else None
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

    def _forget_if_empty(self, client_id: str, log_name: str) -> None:
        """Take an app whose journal for this log is empty out of the log's journals index.

        First, in the app's slot and atomically: if the journal is empty, delete it and its
        announcement mark (so the gate's next record announces it again). Then SREM, then look
        again: a gate that wrote meanwhile either sees no mark and SADDs after its XADD (after our
        SREM, or before it, and then we see its entry here and add the app back)."""
        r = self.store.redis
        journal = keys.journal(client_id, log_name)
        announced = keys.journal_announced(client_id, log_name)
        if not self.store.lua("ledger_journal_forget")(keys=[journal, announced]):
            return
        r.srem(keys.journals_index(log_name), client_id)
        pipe = r.pipeline(transaction=False)
        pipe.xlen(journal)
        pipe.exists(announced)
        if any(int(x or 0) for x in pipe.execute()):
            r.sadd(keys.journals_index(log_name), client_id)


def correction_for(original: dict[str, Any], index: int, now: float) -> dict[str, Any]:
    """The record appended when a sequenced record turns out not to have been delivered: same
    person, app and views, so it stands next to the original wherever that is read."""
    record = {k: v for k, v in original.items() if k not in ("index", "log")}
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
