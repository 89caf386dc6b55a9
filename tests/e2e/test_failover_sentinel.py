"""Failover under load with Redis Sentinel and WAIT 1 (issue 10, item 3).

A real primary, one replica and three sentinels (all ``redis-server`` processes on loopback), the
broker app served over real HTTP with ``BROKER_REDIS_SENTINELS`` and ``BROKER_REDIS_WAIT_REPLICAS=1``,
threads reading ``/v1/me``; the primary is killed with SIGKILL mid-load. Then: no acknowledged
disclosure is lost, no refused request shows as delivered, no 500, and the broker follows the
promoted replica without a restart.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from broker.app import create_app
from broker.config import Settings
from broker.core.keyring import Keyring
from broker.errors import StorageUnavailable
from broker.gate import disclosure as gate
from broker.ledger.sequencer import start_in_background
from broker.storage.embedded import free_port
from broker.storage.store import Store
from tests.support.environment import LiveServer
from tests.support.replication import SERVICE, Load, ReplicaSet, make_people, settle_and_check


@pytest.fixture(autouse=True)
def no_leftover_voids() -> Iterator[None]:
    yield
    gate._unconfirmed.clear()  # this process's pending voids belong to this test's Redis


@pytest.fixture
def replica_set(tmp_path: Path) -> Iterator[ReplicaSet]:
    rs = ReplicaSet(tmp_path / "redis", replicas=1, sentinels=3)
    try:
        rs.start(down_after_ms=500, failover_timeout_ms=3000)
        yield rs
    finally:
        rs.stop()


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_wait_covers_a_write_made_on_another_connection(tmp_path: Path) -> None:
    """WAIT confirms the last write of its own connection; the record may have gone out on another
    pooled connection, so confirm_durable must not be satisfied by an older offset."""
    rs = ReplicaSet(tmp_path / "redis", replicas=1)
    try:
        rs.start()
        store = Store.from_url(f"redis://127.0.0.1:{rs.primary.port}/0", wait_replicas=1)
        store.wait_timeout_ms = 300
        store.redis.ping()  # the pooled connection's last command precedes the write below
        replica = rs.replicas[0]
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        try:
            rs.primary.client.set("record", "1")  # written on another connection
            with pytest.raises(StorageUnavailable):
                store.confirm_durable("record")
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
        wait_for(lambda: _confirmed(store), 20, "the replica to confirm once it runs again")
        store.close()
    finally:
        rs.stop()


def _confirmed(store: Store) -> bool:
    try:
        store.confirm_durable("record")
        return True
    except StorageUnavailable:
        return False


@pytest.mark.slow
def test_sentinel_failover_under_load_loses_nothing_and_invents_nothing(
    tmp_path: Path, replica_set: ReplicaSet
) -> None:
    port = free_port()
    sentinels = ",".join(f"{h}:{p}" for h, p in replica_set.sentinel_addresses)
    settings = Settings.from_env(
        {
            "BROKER_DATA_DIR": str(tmp_path / "data"),
            "BROKER_REDIS_SENTINELS": sentinels,
            "BROKER_REDIS_SENTINEL_SERVICE": SERVICE,
            "BROKER_REDIS_WAIT_REPLICAS": "1",
            "BROKER_REDIS_TIMEOUT_MS": "1000",
            "BROKER_LOG_LEVEL": "WARNING",
        }
    )
    settings = replace(settings, issuer=f"http://127.0.0.1:{port}")
    store = Store.from_settings(settings)
    assert store.sentinel is not None
    tokens = make_people(store, settings, 4)
    server = LiveServer(create_app(settings, store), port)
    server.start()
    stop_sequencer = start_in_background(store, Keyring(settings.signing_keys_file), settings)
    load = Load(server.url, tokens)
    try:
        assert requests.get(f"{server.url}/readyz", timeout=10).status_code == 200
        load.start()
        wait_for(lambda: load.count(200) >= 40, 20, "disclosures before the failover")

        old = replica_set.primary
        old.kill()
        killed_at = time.monotonic()
        new = replica_set.wait_promoted(old, timeout=30)
        # the promoted primary has no replica yet: nothing can be confirmed, and /readyz says so
        ready = requests.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["checks"]["replication"] is False
        # The old primary comes back as a replica of the new one, so WAIT 1 can be satisfied again
        # and disclosures flow, through the same Store (found via the sentinels), without a restart.
        old.start("--replicaof", "127.0.0.1", str(new.port))
        wait_for(lambda: load.count(200, after=killed_at) >= 40, 30, "disclosures after the failover")
        wait_for(
            lambda: requests.get(f"{server.url}/readyz", timeout=30).status_code == 200, 20, "ready again"
        )
    finally:
        load.stop()
        stop_sequencer.set()
        server.stop()

    final = Store.from_url(f"redis://127.0.0.1:{new.port}/0")  # the promoted primary's own data
    outcome = settle_and_check(final, settings, load.sent)
    final.close()
    store.close()
    assert outcome.other == {}, f"only 200 or 503 may answer (no 500s, every request answered): {outcome}"
    assert outcome.acknowledged >= 80, outcome
    assert outcome.lost == 0, outcome
    assert outcome.fictional == 0, outcome
