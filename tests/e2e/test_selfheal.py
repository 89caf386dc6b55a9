"""Self-healing single node (issue 10, item 4), with real processes and a real redis-server.

* the broker's master restarts a dead embedded redis-server (same data, same socket) and requests
  come back to 200 without restarting the broker;
* while Redis hangs (SIGSTOP), the circuit breaker makes requests fail fast with 503, ``/readyz``
  says 503, and everything heals by itself after SIGCONT;
* a restart right after ``kill -9`` of the master, on the same port and data directory, comes up.

Timing assertions are deliberately generous (the machine may be busy); precise figures belong in a
benchmark, not here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from broker.storage.breaker import CLOSED, OPEN, CircuitOpen
from broker.storage.store import Store
from tests.support.broker_process import Broker
from tests.support.environment import ROOT, broker_env
from tests.support.redis_servers import RedisServer, server_binary

pytestmark = pytest.mark.slow


@pytest.fixture
def stoppable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test only (it gets SIGSTOP); always continued and stopped after."""
    server = RedisServer(tmp_path / "ext-redis")
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


def demo_broker(tmp_path: Path, **env: str) -> tuple[Broker, dict[str, object]]:
    creds = tmp_path / "creds.json"
    broker = Broker(tmp_path, **env)
    broker.args = ("demo", "--port", str(broker.port), "--credentials-out", str(creds))
    del broker.env["BROKER_ISSUER"]  # the demo's issuer follows --port
    broker.start()
    return broker, json.loads(creds.read_text())


def org_client(broker: Broker, creds: dict[str, object]) -> tuple[str, str]:
    """An org token of the demo's org_app in acme, and the members URL it may read."""
    apps, orgs = creds["apps"], creds["orgs"]
    assert isinstance(apps, dict) and isinstance(orgs, dict)
    app, acme = apps["org_app"], orgs["acme"]["id"]
    token = requests.post(
        f"{broker.url}/oauth/token",
        data={"grant_type": "client_credentials", "org_id": acme},
        auth=(app["client_id"], app["client_secret"]),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    return token.json()["access_token"], f"{broker.url}/v1/orgs/{acme}/members"


def exported(tmp_path: Path, org_id: str) -> set[str]:
    """Ids of the org's disclosure records, read by ``broker ledger export`` beside the server."""
    result = subprocess.run(
        [sys.executable, "-m", "broker", "ledger", "export", "--org", org_id],
        env=broker_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return {json.loads(line)["id"] for line in result.stdout.splitlines() if line.strip()}


def poll_until_200(url: str, headers: dict[str, str], timeout: float = 60) -> list[int]:
    """Statuses seen until the first 200; every answer on the way must be a clean 503."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            resp = requests.get(url, headers=headers, timeout=10)
        except requests.ConnectionError:
            seen.append(0)  # never expected: the broker itself keeps running
            time.sleep(0.1)
            continue
        seen.append(resp.status_code)
        if resp.status_code == 200:
            return seen
        assert resp.status_code == 503, resp.text
        assert resp.headers["Retry-After"] == "1"
        assert resp.json()["error"] == "temporarily_unavailable"
        time.sleep(0.05)
    raise AssertionError(f"no 200 within {timeout}s; saw {seen[-20:]}")


def test_a_killed_embedded_redis_server_is_restarted_with_its_data(
    tmp_path: Path, brokers: list[Broker]
) -> None:
    broker, creds = demo_broker(tmp_path)
    brokers.append(broker)
    token, members = org_client(broker, creds)
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(members, headers=auth, timeout=10).status_code == 200  # a disclosure
    orgs = creds["orgs"]
    assert isinstance(orgs, dict)
    acme = orgs["acme"]["id"]
    before: set[str] = set()
    deadline = time.monotonic() + 30
    while not before and time.monotonic() < deadline:
        before = exported(tmp_path, acme)
    assert before, "the disclosure was not recorded"

    pidfile = tmp_path / "data" / "redis" / "redis.pid"
    old_pid = int(pidfile.read_text())
    os.kill(old_pid, signal.SIGKILL)

    seen = poll_until_200(members, auth)
    assert 0 not in seen and 500 not in seen
    assert broker.process is not None and broker.process.poll() is None  # the same broker
    assert int(pidfile.read_text()) != old_pid
    # The watchdog logs "back" once its own readiness check passes, which can come after a worker's
    # first 200 (workers reconnect as soon as the socket accepts).
    deadline = time.monotonic() + 30
    while "embedded redis-server is back" not in broker.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = broker.output()
    assert f"embedded redis-server (pid {old_pid}) exited" in log and "(attempt 1)" in log
    assert "embedded redis-server is back" in log
    assert "Traceback" not in log
    assert requests.get(f"{broker.url}/readyz", timeout=10).status_code == 200
    assert before <= exported(tmp_path, acme)  # written before the kill, still there (AOF always)


def test_store_fails_fast_while_redis_hangs_and_heals(stoppable_redis: RedisServer) -> None:
    store = Store.from_url(stoppable_redis.url, timeout_ms=1500, breaker_ms=300)
    try:
        store.redis.set("selfheal:probe", "1")
        assert stoppable_redis.process is not None
        stoppable_redis.process.send_signal(signal.SIGSTOP)
        with pytest.raises(redis.TimeoutError):
            store.redis.get("selfheal:probe")
        assert store.breaker.state == OPEN
        started = time.monotonic()
        with pytest.raises(CircuitOpen):
            store.redis.get("selfheal:probe")
        with pytest.raises(CircuitOpen):
            store.redis.pipeline().get("selfheal:probe").execute()
        with pytest.raises(CircuitOpen):
            store.script("return 1")(keys=["selfheal:probe"])
        assert time.monotonic() - started < 1.0  # three calls, each far below the 1.5 s timeout
        assert store.ping() is False

        stoppable_redis.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not store.ping():
            time.sleep(0.05)
        assert store.breaker.state == CLOSED
        assert store.redis.get("selfheal:probe") == "1"
    finally:
        store.redis.delete("selfheal:probe")
        store.close()


def test_requests_fail_fast_while_redis_hangs_and_heal_after_sigcont(
    tmp_path: Path, brokers: list[Broker], stoppable_redis: RedisServer
) -> None:
    broker = Broker(tmp_path, BROKER_REDIS_URL=stoppable_redis.url, BROKER_REDIS_TIMEOUT_MS="2000")
    brokers.append(broker.start())
    created = requests.post(
        f"{broker.url}/internal/v1/users", json={"username": "hang"}, headers=broker.headers(), timeout=10
    )
    assert created.status_code == 201
    user_url = f"{broker.url}/internal/v1/users/{created.json()['id']}"
    assert stoppable_redis.process is not None
    stoppable_redis.process.send_signal(signal.SIGSTOP)

    first = requests.get(user_url, headers=broker.headers(), timeout=15)  # waits for the timeout
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    started = time.monotonic()
    second = requests.get(user_url, headers=broker.headers(), timeout=15)
    took = time.monotonic() - started
    assert second.status_code == 503 and second.json()["error"] == "temporarily_unavailable"
    assert took < 1.0, f"the second request took {took:.2f}s: it did not fail fast"
    ready = requests.get(f"{broker.url}/readyz", timeout=15)
    assert ready.status_code == 503 and ready.json()["checks"]["redis"] is False

    stoppable_redis.process.send_signal(signal.SIGCONT)
    seen = poll_until_200(user_url, broker.headers())
    assert 500 not in seen and 0 not in seen
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if requests.get(f"{broker.url}/readyz", timeout=15).status_code == 200:
            break
        time.sleep(0.1)
    assert requests.get(f"{broker.url}/readyz", timeout=15).json()["redis_circuit"] == "closed"
    assert "Traceback" not in broker.output()


def test_restart_on_the_same_port_right_after_kill_9_of_the_master(
    tmp_path: Path, brokers: list[Broker]
) -> None:
    first = Broker(tmp_path)
    first.env["BROKER_WORKERS"] = "2"
    brokers.append(first.start())
    created = requests.post(
        f"{first.url}/internal/v1/orgs", json={"name": "Phoenix"}, headers=first.headers(), timeout=10
    )
    assert created.status_code == 201
    assert first.process is not None
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)

    second = Broker(tmp_path)  # immediately: the same port and the same data directory
    second.port, second.url = first.port, first.url
    second.env.update(BROKER_PORT=str(first.port), BROKER_ISSUER=first.url, BROKER_WORKERS="2")
    brokers.append(second.start())
    # /readyz may have been answered by a worker of the killed master that was still dying; the new
    # server is the one whose own granian says it listens.
    deadline = time.monotonic() + 60
    while "Listening at" not in second.output() and time.monotonic() < deadline:
        assert second.process is not None and second.process.poll() is None, second.output()
        time.sleep(0.1)
    assert "Listening at" in second.output(), second.output()
    found = requests.get(
        f"{second.url}/internal/v1/orgs/{created.json()['id']}", headers=second.headers(), timeout=10
    )
    assert found.status_code == 200 and found.json()["name"] == "Phoenix"
    assert "is already in use" not in second.output()


LISTENER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(float(sys.argv[1]))
"""


def listener(seconds: float, *argv: str) -> tuple[subprocess.Popen[str], int]:
    """A process listening on a free port for ``seconds``; ``argv`` is what its command line shows."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(seconds), *argv], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_check_port_free_waits_for_an_orphaned_broker_worker_only() -> None:
    from broker.server import ServeError, check_port_free

    # Looks like a worker of a killed broker (a "broker" command line, a parent that is no broker),
    # and lets go of the port after a moment: the start waits for it instead of refusing.
    orphan, port = listener(1.5, "-m", "broker", "serve")
    try:
        started = time.monotonic()
        check_port_free("127.0.0.1", port, orphan_wait=30)
        assert 1.0 <= time.monotonic() - started < 30  # it waited for the holder, not for nothing
        assert orphan.wait(10) == 0  # which let go of the port by exiting
    finally:
        orphan.kill()
        orphan.wait()

    # Anything else holding the port is refused at once, with the clear message.
    other, port = listener(60, "some-other-server")
    try:
        started = time.monotonic()
        with pytest.raises(ServeError, match=f"BROKER_PORT: 127.0.0.1:{port} is already in use"):
            check_port_free("127.0.0.1", port, orphan_wait=30)
        assert time.monotonic() - started < 10 and other.poll() is None
    finally:
        other.kill()
        other.wait()

    # An orphan that never lets go: refused once the wait is over.
    stuck, port = listener(60, "-m", "broker", "serve")
    try:
        with pytest.raises(ServeError, match="is already in use"):
            check_port_free("127.0.0.1", port, orphan_wait=0.5)
    finally:
        stuck.kill()
        stuck.wait()


def test_the_watchdog_backs_off_while_the_restart_fails_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A redis-server that cannot start again (its AOF refused) is retried with growing delays;
    once the file is good again, it comes back with the data."""
    from broker.storage.embedded import EmbeddedRedis

    caplog.set_level("INFO", logger="broker.embedded")
    embedded = EmbeddedRedis(tmp_path / "data", server_binary())
    client = redis.Redis.from_url(embedded.start(), socket_timeout=5)
    try:
        embedded.watch()
        client.set("kept", "yes")
        # Redis 6 keeps one appendonly.aof; Redis 7 and Valkey an appendonlydir with increments.
        increments = sorted((embedded.dir / "appendonlydir").glob("*.incr.aof"))
        aof = increments[-1] if increments else embedded.dir / "appendonly.aof"
        good = aof.read_bytes()
        assert embedded.process is not None
        first = embedded.process.pid
        aof.write_bytes(good + b"this is not the redis protocol\r\n")
        os.kill(first, signal.SIGKILL)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and caplog.text.count("restarting in") < 3:
            time.sleep(0.05)
        assert "exited (signal SIGKILL); restarting in 0.1s (attempt 1)" in caplog.text
        assert "restarting in 0.2s (attempt 2)" in caplog.text
        assert "restarting in 0.4s (attempt 3)" in caplog.text
        assert "refused its AOF file" in caplog.text  # each failed attempt says why

        aof.write_bytes(good)
        while time.monotonic() < deadline and "embedded redis-server is back" not in caplog.text:
            time.sleep(0.05)
        assert "embedded redis-server is back" in caplog.text
        assert embedded.process is not None and embedded.process.pid != first
        assert client.get("kept") == b"yes"
    finally:
        client.close()
        embedded.stop()
    assert embedded.process is None
