"""``broker worker`` as a real process: nothing is lost when it is killed with SIGKILL mid-delivery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from broker.core.sealing import Sealer
from broker.events import outbox as events
from broker.events import webhook_secrets
from broker.storage import keys
from broker.storage.embedded import EmbeddedRedis
from tests.support.environment import ROOT, broker_env
from tests.support.redis_servers import server_binary
from tests.support.webhook_receiver import Receiver

SECRET = "brk_whsec_" + "k" * 43  # issued by the previous release, still stored in clear
APP = "app_00000000000000aa"

pytestmark = pytest.mark.slow


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "broker", "worker"], env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT
        )


def test_no_event_lost_when_worker_is_killed_mid_delivery(
    tmp_path: Path, redis_server: Any, store: Any
) -> None:
    release = threading.Event()
    rx = Receiver(hold=release)  # holds requests until released: the worker is mid-delivery
    try:
        store.redis.hset(
            keys.app(APP),
            mapping={"client_id": APP, "webhook_url": rx.url, "webhook_secret": SECRET, "status": "active"},
        )
        store.redis.zadd(keys.apps_all(), {APP: 1})
        pipe = store.redis.pipeline(transaction=True)
        event_id = events.emit(pipe, APP, "installation.disabled", {"org": "o_pairwise"})
        pipe.execute()
        env = broker_env(
            tmp_path,
            BROKER_REDIS_URL=redis_server.url,
            BROKER_WEBHOOK_TIMEOUT_SECONDS="2",
            BROKER_WEBHOOK_POLL_MS="50",
            BROKER_WEBHOOK_BACKOFF_BASE_MS="1",
            BROKER_WEBHOOK_ALLOW_PRIVATE="true",  # the receiver is on loopback
        )
        log = tmp_path / "worker.log"

        first = start_worker(env, log)
        try:
            rx.wait_for(1, timeout=30)
            first.send_signal(signal.SIGKILL)  # kill -9 while the request is in flight
            assert first.wait(10) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert store.redis.get(keys.webhook_cursor(APP)) is None  # not acknowledged: still pending
        release.set()

        second = start_worker(env, log)
        try:
            received = rx.wait_for(2, timeout=30)  # after the dead worker's lease expires
            deadline = time.monotonic() + 15
            while store.redis.get(keys.webhook_cursor(APP)) is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                assert second.wait(15) == 0  # SIGTERM is a clean stop
            finally:
                if second.poll() is None:
                    second.kill()
                    second.wait()
        assert [json.loads(r.body)["id"] for r in received] == [event_id, event_id]  # same id: idempotent
        assert {r.headers["Broker-Event-Id"] for r in received} == {event_id}
        assert {r.headers["webhook-id"] for r in received} == {event_id}  # stable across the retry
        for r in received:
            assert Webhook(SECRET.encode()).verify(r.body, r.headers)["id"] == event_id
        assert store.redis.get(keys.webhook_cursor(APP)) is not None
        assert store.redis.hget(keys.webhook_status(APP), "last_delivered_event") == event_id
        assert "Traceback" not in log.read_text()
    finally:
        rx.stop()


def test_worker_uses_the_embedded_redis_of_the_owner_of_the_data_directory(tmp_path: Path) -> None:
    """A running owner (here this test; normally ``broker serve``) shares its Redis (issue 10 item 5)."""
    env = broker_env(tmp_path)
    embedded = EmbeddedRedis(Path(env["BROKER_DATA_DIR"]), server_binary())
    embedded.start()
    try:
        pid = embedded.process.pid if embedded.process else None
        result = subprocess.run(
            [sys.executable, "-m", "broker", "worker", "--once"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert embedded.process is not None and embedded.process.pid == pid  # still the owner's
        assert embedded.process.poll() is None
    finally:
        embedded.stop()
    assert result.returncode == 0, result.stderr
    assert "webhook pass done: 0 app(s) handled" in result.stdout
    assert os.path.isdir(env["BROKER_DATA_DIR"])


def test_worker_once_delivers_and_exits(tmp_path: Path, redis_server: Any, store: Any) -> None:
    """The worker process opens a secret sealed with the data directory's sealing keys file."""
    rx = Receiver()
    try:
        env = broker_env(tmp_path, BROKER_REDIS_URL=redis_server.url, BROKER_WEBHOOK_ALLOW_PRIVATE="true")
        sealer = Sealer(Path(env["BROKER_DATA_DIR"]) / "sealing-keys.json")
        secret = webhook_secrets.new_secret()
        sealed = webhook_secrets.seal(sealer, APP, "webhook_secret", secret)
        store.redis.hset(
            keys.app(APP),
            mapping={"client_id": APP, "webhook_url": rx.url, "webhook_secret": sealed, "status": "active"},
        )
        store.redis.zadd(keys.apps_all(), {APP: 1})
        pipe = store.redis.pipeline(transaction=True)
        event_id = events.emit(pipe, APP, "app.suspended", {})
        pipe.execute()
        result = subprocess.run(
            [sys.executable, "-m", "broker", "worker", "--once"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "1 app(s) handled" in result.stdout
        assert [r.headers["Broker-Event-Id"] for r in rx.requests] == [event_id]
        assert Webhook(secret).verify(rx.requests[0].body, rx.requests[0].headers)["id"] == event_id
    finally:
        rx.stop()
