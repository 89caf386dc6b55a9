"""``broker serve`` as a real process on the embedded Redis: restarts, signals, and bad start-ups.

Each test starts whole broker processes (gunicorn + redis-server), so they are marked slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from broker.storage.embedded import free_port
from tests.conftest import ROOT, RedisServer, broker_env

pytestmark = pytest.mark.slow


class Broker:
    """One ``python -m broker serve`` process with its output in files (no pipe can fill up)."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = broker_env(
            tmp_path,
            BROKER_PORT=str(self.port),
            BROKER_WORKERS="1",
            BROKER_THREADS="4",
            BROKER_ISSUER=self.url,
            **env,
        )
        self.args = args or ("serve",)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tmp_path / f"broker-{self.port}.log"

    def start(self, timeout: float = 15) -> Broker:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "broker", *self.args],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"broker exited {self.process.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"broker not ready in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def headers(self) -> dict[str, str]:
        secrets = json.loads((self.tmp_path / "data" / "dev-secrets.json").read_text())
        return {"Authorization": f"Bearer {secrets['BROKER_PLATFORM_API_KEY']}"}


@pytest.fixture
def brokers() -> Any:
    started: list[Broker] = []
    yield started
    for broker in started:
        if broker.process is not None and broker.process.poll() is None:
            broker.process.kill()
            broker.process.wait(10)


def redis_pid(tmp_path: Path) -> int:
    return int((tmp_path / "data" / "redis" / "redis.pid").read_text())


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True  # a zombie waiting for its (dead) parent's reaper: not running
        time.sleep(0.05)
    return False


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        env=broker_env(tmp_path, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_data_survives_restart_and_sigterm_stops_redis(tmp_path: Path, brokers: list[Broker]) -> None:
    first = Broker(tmp_path)
    brokers.append(first.start())
    created = requests.post(
        f"{first.url}/internal/v1/users", json={"username": "persist"}, headers=first.headers(), timeout=5
    )
    assert created.status_code == 201
    pid = redis_pid(tmp_path)
    assert first.stop(signal.SIGTERM) == 0
    assert wait_gone(pid), "the embedded redis-server outlived a SIGTERM of the broker"
    second = Broker(tmp_path)
    brokers.append(second.start())
    again = requests.get(
        f"{second.url}/internal/v1/users/{created.json()['id']}", headers=second.headers(), timeout=5
    )
    assert again.status_code == 200 and again.json()["username"] == "persist"


def test_kill_9_leaves_nothing_that_blocks_the_next_start(tmp_path: Path, brokers: list[Broker]) -> None:
    first = Broker(tmp_path)
    brokers.append(first.start())
    created = requests.post(
        f"{first.url}/internal/v1/orgs", json={"name": "Survivor"}, headers=first.headers(), timeout=5
    )
    assert created.status_code == 201
    pid = redis_pid(tmp_path)
    first.stop(signal.SIGKILL)
    second = Broker(tmp_path)  # immediately: a fresh port, the same data directory
    brokers.append(second.start())
    assert wait_gone(pid)
    assert redis_pid(tmp_path) != pid
    found = requests.get(
        f"{second.url}/internal/v1/orgs/{created.json()['id']}", headers=second.headers(), timeout=5
    )
    assert found.status_code == 200 and found.json()["name"] == "Survivor"


def test_second_broker_on_the_same_data_dir_is_refused(tmp_path: Path, brokers: list[Broker]) -> None:
    brokers.append(Broker(tmp_path).start())
    result = run_cli(tmp_path, "serve", BROKER_PORT=str(free_port()))
    assert result.returncode == 2
    assert "another broker (pid " in result.stderr and "is already running on data directory" in result.stderr
    assert f"BROKER_REDIS_URL=unix://{tmp_path / 'data' / 'redis' / 'redis.sock'}" in result.stderr


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(tmp_path, "serve", BROKER_PORT=str(port))
    assert result.returncode == 2
    assert f"BROKER_PORT: 127.0.0.1:{port} is already in use" in result.stderr
    assert not (tmp_path / "data" / "redis" / "redis.pid").exists()  # nothing was started


def test_corrupt_aof_is_explained_and_left_untouched(tmp_path: Path, brokers: list[Broker]) -> None:
    first = Broker(tmp_path)
    brokers.append(first.start())
    requests.post(
        f"{first.url}/internal/v1/orgs", json={"name": "Before"}, headers=first.headers(), timeout=5
    )
    assert first.stop() == 0
    aof = tmp_path / "data" / "redis" / "appendonly.aof"
    with open(aof, "ab") as fh:
        fh.write(b"this is not the redis protocol\r\n")
    digest = hashlib.sha256(aof.read_bytes()).hexdigest()
    result = run_cli(tmp_path, "serve", BROKER_PORT=str(free_port()))
    assert result.returncode == 2
    assert "refused its AOF file" in result.stderr and "redis-check-aof --fix" in result.stderr
    assert hashlib.sha256(aof.read_bytes()).hexdigest() == digest


def test_redis_url_that_does_not_answer(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli(tmp_path, "serve", BROKER_PORT=str(free_port()), BROKER_REDIS_URL=url)
    assert result.returncode == 2
    assert f"BROKER_REDIS_URL: no Redis answered at {url}" in result.stderr


def test_redis_stopped_mid_run_gives_503_json(tmp_path: Path, brokers: list[Broker]) -> None:
    server = RedisServer(tmp_path / "ext-redis")
    server.start()
    try:
        broker = Broker(tmp_path, BROKER_REDIS_URL=server.url, BROKER_REDIS_TIMEOUT_MS="500")
        brokers.append(broker.start())
        server.stop()
        resp = requests.get(
            f"{broker.url}/internal/v1/users/usr_0123456789abcdef", headers=broker.headers(), timeout=10
        )
        assert resp.status_code == 503
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.headers["Retry-After"] == "1"
        assert resp.json()["error"] == "temporarily_unavailable"
        assert "Traceback" not in resp.text
        ready = requests.get(f"{broker.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] is False
    finally:
        server.stop()
