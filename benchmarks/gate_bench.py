"""Benchmark the disclosure gate's hot path against a real redis-server.

Measures /v1/me's storage work (token check + journal append in one Lua script, then one profile
read) at 1 and 16 threads, with AOF `appendfsync always` (production) and `appendfsync no`
(for the ratio). Reports throughput, latency percentiles, Redis commands per request and the round
trips per request (counted on the wire, see tests/support/round_trips.py).

    python benchmarks/gate_bench.py [--requests 3000]

A benchmark, not a test: it reports figures and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.config import Settings
from broker.core import catalog as catalog_mod
from broker.gate.disclosure import Gate
from broker.storage.embedded import free_port
from broker.storage.store import Store
from tests.support.factories import make_token, make_user, raw_app, raw_grant
from tests.support.redis_servers import server_binary
from tests.support.round_trips import round_trips


def start_redis(directory: Path, fsync: str, binary: str = "") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            binary or server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync,
            "--save",
            "",
            "--logfile",
            str(directory / "log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, port


def run(fsync: str, threads: int, total: int, binary: str = "") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp), fsync, binary)
        try:
            settings = Settings.from_env(
                {"BROKER_DATA_DIR": tmp, "BROKER_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
            )
            store = Store.from_url(settings.redis_url)
            catalog = catalog_mod.load(settings.scopes_dir)
            gate = Gate(store, catalog, settings.token_hash_key, settings.pairwise_key)
            tokens = []
            for _ in range(threads):
                uid = make_user(store)
                cid = raw_app(store)
                gid = raw_grant(store, cid, uid, "openid profile", "user_id nickname avatar")
                tokens.append(
                    make_token(
                        store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
                    )
                )
            per_thread = total // threads
            latencies: list[float] = []
            lock = threading.Lock()

            def worker(token: str) -> None:
                mine = []
                for i in range(per_thread):
                    start = time.perf_counter()
                    disclosed = gate.authorize_and_record(
                        token, kind="grant", required_scope="openid", endpoint="bench", request_id=f"b{i}"
                    )
                    gate.profiles(disclosed, [disclosed.subject])
                    mine.append(time.perf_counter() - start)
                with lock:
                    latencies.extend(mine)

            # Round trips, counted on the wire (not timed) over a few requests after a warm-up one.
            def one(i: int) -> None:
                disclosed = gate.authorize_and_record(
                    tokens[0], kind="grant", required_scope="openid", endpoint="bench", request_id=f"w{i}"
                )
                gate.profiles(disclosed, [disclosed.subject])

            one(0)
            with round_trips() as trips:
                for i in range(1, 11):
                    one(i)
            trip_names = sorted({" + ".join(t) for t in trips})

            before = int(store.redis.info("stats")["total_commands_processed"])
            started = time.perf_counter()
            pool = [threading.Thread(target=worker, args=(t,)) for t in tokens]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            elapsed = time.perf_counter() - started
            commands = int(store.redis.info("stats")["total_commands_processed"]) - before - 1
            done = per_thread * threads
            latencies.sort()
            return {
                "rps": done / elapsed,
                "p50_ms": statistics.median(latencies) * 1000,
                "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
                "commands_per_request": commands / done,
                "round_trips_per_request": len(trips) / 10,
                "round_trips": trip_names,
            }
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    results = {}
    for fsync in ("always", "no"):
        for threads in (1, 16):
            results[(fsync, threads)] = r = run(fsync, threads, args.requests)
            print(
                f"appendfsync={fsync:<6} threads={threads:<3} {r['rps']:8.0f} req/s  "
                f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                f"server commands/request (incl. inside Lua) {r['commands_per_request']:.2f}"
            )
    a1, a16, n16 = results[("always", 1)], results[("always", 16)], results[("no", 16)]
    print(f"group commit, 16 vs 1 threads, appendfsync always: {a16['rps'] / a1['rps']:.2f}x throughput")
    print(f"durability cost at 16 threads: always / no = {a16['rps'] / n16['rps']:.2f} of the throughput")
    print(
        f"round trips per request (counted on the wire): {a1['round_trips_per_request']:g}, "
        f"each one of: {', '.join(a1['round_trips'])}"
    )


if __name__ == "__main__":
    main()
