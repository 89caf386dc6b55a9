"""Webhook delivery (issue 5 item 5) against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from standardwebhooks import Webhook

from broker.config import Settings
from broker.events import outbox as events
from broker.events import webhooks
from broker.events.webhooks import Backoff, Worker, verify_signature
from broker.storage import keys
from broker.storage.embedded import free_port
from tests.support.webhook_receiver import Receiver

SECRET = "brk_whsec_" + "s" * 43
APP_A = "app_000000000000000a"
APP_B = "app_000000000000000b"


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Tiny backoff so retries are due almost at once; no test asserts a duration."""
    return replace(
        settings,
        webhook_backoff_base_ms=1,
        webhook_backoff_cap_seconds=1,
        webhook_max_attempts=4,
        webhook_timeout_seconds=5,
        webhook_allow_private=True,  # the receivers are on loopback
    )


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for r in started:
        r.stop()


def add_app(store: Any, client_id: str, url: str | None, secret: str | None = SECRET) -> None:
    record = {"client_id": client_id, "name": client_id, "status": "active"}
    if url is not None:
        record["webhook_url"] = url
    if secret is not None:
        record["webhook_secret"] = secret
    store.redis.hset(keys.app(client_id), mapping=record)
    store.redis.zadd(keys.apps_all(), {client_id: time.time()})


def emit(store: Any, client_id: str, event_type: str = "grant.created", **data: Any) -> str:
    pipe = store.redis.pipeline(transaction=True)
    event_id = events.emit(pipe, client_id, event_type, data or {"user": "u_pairwise"})
    pipe.execute()
    return event_id


def drain(worker: Worker, done: Callable[[], bool], rounds: int = 200) -> None:
    """Run passes until ``done``; bounded by a number of passes, with short pauses for the backoff."""
    for _ in range(rounds):
        if done():
            return
        worker.run_once()
        time.sleep(0.005)
    assert done(), "condition not reached"


def ids(receiver: Receiver) -> list[str]:
    return [json.loads(r.body)["id"] for r in receiver.requests]


def test_delivery_is_signed_and_carries_the_event(
    store: Any, fast: Settings, receivers: list[Receiver]
) -> None:
    rx = Receiver()
    receivers.append(rx)
    add_app(store, APP_A, rx.url)
    event_id = emit(store, APP_A, "grant.revoked", user="u_abc", scopes=["profile"])
    worker = Worker(store, fast)
    assert worker.run_once() == ["delivered"]
    (req,) = rx.wait_for(1)
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Broker-Event-Id"] == req.headers["webhook-id"] == event_id
    assert Webhook(SECRET.encode()).verify(req.body, req.headers)["id"] == event_id  # Standard Webhooks
    assert verify_signature(SECRET, req.headers["Broker-Signature"], req.body) is True  # deprecated header
    assert verify_signature("brk_whsec_wrong", req.headers["Broker-Signature"], req.body) is False
    body = json.loads(req.body)
    assert set(body) == {"id", "type", "time", "data"}
    assert body["id"] == event_id and body["type"] == "grant.revoked"
    assert body["data"] == {"user": "u_abc", "scopes": ["profile"]}
    assert worker.run_once() == []  # nothing pending: the cursor moved
    status = webhooks.delivery_status(store, APP_A)
    assert status["state"] == "idle" and status["last_status"] == "200"
    assert status["last_delivered_event"] == event_id
    attempts = webhooks.recent_attempts(store, APP_A)
    assert [(a["event"], a["outcome"], a["status"]) for a in attempts] == [(event_id, "ok", "200")]
    worker.close()


def test_verify_signature_rejects_stale_future_tampered_and_garbage() -> None:
    body = b'{"id":"evt_1"}'
    header = webhooks.signature_header(SECRET, body, 1_800_000_000)
    assert verify_signature(SECRET, header, body, now=1_800_000_000 + 300) is True
    assert verify_signature(SECRET, header, body.decode(), now=1_800_000_000) is True
    assert verify_signature(SECRET, header, body, now=1_800_000_000 + 301) is False  # stale: replay
    assert verify_signature(SECRET, header, body, now=1_800_000_000 - 301) is False  # from the future
    assert verify_signature(SECRET, header, body, tolerance=10, now=1_800_000_011) is False
    assert verify_signature(SECRET, header, b'{"id":"evt_2"}', now=1_800_000_000) is False
    t, v1 = header.split(",")
    assert verify_signature(SECRET, f"t=1800000001,{v1}", body, now=1_800_000_000) is False  # moved timestamp
    assert verify_signature(SECRET, f"{t},v1=00,{v1}", body, now=1_800_000_000) is True  # rotation: any v1
    for bad in (None, "", "garbage", "t=x,v1=ab", t, v1):
        assert verify_signature(SECRET, bad, body, now=1_800_000_000) is False


def test_receiver_down_gets_the_event_once_it_is_back(
    store: Any, fast: Settings, receivers: list[Receiver]
) -> None:
    port = free_port()
    add_app(store, APP_A, f"http://127.0.0.1:{port}/hook")
    event_id = emit(store, APP_A)
    worker = Worker(store, fast)
    assert worker.run_once() == ["retry"]
    status = webhooks.delivery_status(store, APP_A)
    assert status["state"] == "retrying" and status["attempts"] == "1"
    assert status["last_error"] == "connection failed" and status["last_status"] == ""
    rx = Receiver(port=port)
    receivers.append(rx)
    drain(worker, lambda: len(rx.requests) == 1)
    assert ids(rx) == [event_id]
    assert webhooks.delivery_status(store, APP_A)["state"] == "idle"
    worker.close()


def test_events_are_delivered_in_order_per_app_even_across_retries(
    store: Any, fast: Settings, receivers: list[Receiver]
) -> None:
    failures = {"left": 2}

    def respond(_seen: list[Any], body: bytes) -> int:
        if json.loads(body)["data"]["n"] == 1 and failures["left"] > 0:
            failures["left"] -= 1
            return 500
        return 204

    rx = Receiver(respond=respond)
    receivers.append(rx)
    add_app(store, APP_A, rx.url)
    sent = [emit(store, APP_A, n=n) for n in range(5)]
    worker = Worker(store, fast)
    drain(worker, lambda: len(rx.requests) == 7)
    assert ids(rx) == [sent[0], sent[1], sent[1], sent[1], sent[2], sent[3], sent[4]]
    assert [r.status for r in rx.requests] == [204, 500, 500, 204, 204, 204, 204]
    assert worker.run_once() == []
    worker.close()


def test_dead_letter_after_max_attempts_then_redeliver(
    store: Any, fast: Settings, receivers: list[Receiver]
) -> None:
    healthy = threading.Event()

    def respond(_seen: list[Any], body: bytes) -> int:
        return 200 if healthy.is_set() or json.loads(body)["data"]["n"] == 1 else 503

    rx = Receiver(respond=respond)
    receivers.append(rx)
    add_app(store, APP_A, rx.url)
    doomed, fine = emit(store, APP_A, n=0), emit(store, APP_A, n=1)
    worker = Worker(store, fast)
    drain(worker, lambda: fine in ids(rx))
    assert ids(rx) == [doomed] * fast.webhook_max_attempts + [fine]
    (dead,) = webhooks.dead_letters(store, APP_A)
    assert dead["event"]["id"] == doomed
    assert dead["attempts"] == fast.webhook_max_attempts
    assert dead["last_status"] == "503" and dead["last_error"] == "HTTP 503"
    outcomes = [a["outcome"] for a in reversed(webhooks.recent_attempts(store, APP_A))]
    assert outcomes == ["retry"] * (fast.webhook_max_attempts - 1) + ["dead", "ok"]

    healthy.set()
    assert webhooks.redeliver(store, APP_A, doomed) is True
    assert webhooks.redeliver(store, APP_A, doomed) is False  # no longer dead
    assert webhooks.redeliver(store, APP_A, "evt_unknown") is False
    drain(worker, lambda: ids(rx).count(doomed) == fast.webhook_max_attempts + 1)
    last = rx.requests[-1]
    assert json.loads(last.body)["id"] == doomed and last.status == 200
    assert last.headers["Broker-Event-Id"] == doomed
    assert webhooks.dead_letters(store, APP_A) == []
    worker.close()


def test_a_stuck_receiver_does_not_block_other_apps(
    store: Any, fast: Settings, receivers: list[Receiver]
) -> None:
    release = threading.Event()
    slow = Receiver(hold=release)
    quick = Receiver()
    receivers.extend([slow, quick])
    add_app(store, APP_A, slow.url)
    add_app(store, APP_B, quick.url)
    emit(store, APP_A)
    b_event = emit(store, APP_B)
    worker = Worker(store, fast)
    started = worker.submit_due()
    assert len(started) == 2
    slow.wait_for(1)
    quick.wait_for(1)
    assert ids(quick) == [b_event]
    assert not release.is_set()  # A is still held while B was delivered
    release.set()
    assert sorted(f.result(timeout=15) for f in started) == ["delivered", "delivered"]
    worker.close()


def test_redirects_are_not_followed(store: Any, fast: Settings, receivers: list[Receiver]) -> None:
    rx = Receiver(respond=lambda _seen, _body: 302)
    receivers.append(rx)
    add_app(store, APP_A, rx.url)
    emit(store, APP_A)
    worker = Worker(store, fast)
    assert worker.run_once() == ["retry"]
    assert len(rx.requests) == 1
    status = webhooks.delivery_status(store, APP_A)
    assert status["last_status"] == "302" and status["last_error"] == "HTTP 302"
    worker.close()


def test_app_without_webhook_url_keeps_a_bounded_outbox_marked_undeliverable(
    store: Any, fast: Settings
) -> None:
    settings = replace(fast, webhook_outbox_maxlen=10)
    add_app(store, APP_A, None)
    for n in range(15):
        emit(store, APP_A, n=n)
    worker = Worker(store, settings)
    assert worker.run_once() == ["undeliverable"]
    assert store.redis.xlen(keys.outbox(APP_A)) == 10
    first = json.loads(store.redis.xrange(keys.outbox(APP_A), count=1)[0][1]["e"])
    assert first["data"] == {"n": 5}  # the oldest were trimmed, the newest kept
    assert webhooks.delivery_status(store, APP_A)["state"] == "undeliverable"
    assert store.redis.get(keys.webhook_cursor(APP_A)) is None
    worker.close()


def test_another_worker_holding_the_app_lease_means_busy(
    store: Any, fast: Settings, receivers: list[Receiver]
) -> None:
    rx = Receiver()
    receivers.append(rx)
    add_app(store, APP_A, rx.url)
    emit(store, APP_A)
    store.redis.set(keys.webhook_lease(APP_A), "other-worker", px=60_000)
    worker = Worker(store, fast)
    assert worker.run_once() == ["busy"]
    assert rx.requests == []
    assert store.redis.get(keys.webhook_lease(APP_A)) == "other-worker"  # not ours to release
    worker.close()


def test_a_malformed_outbox_entry_is_dead_lettered_not_blocking(
    store: Any, fast: Settings, receivers: list[Receiver]
) -> None:
    rx = Receiver()
    receivers.append(rx)
    add_app(store, APP_A, rx.url)
    store.redis.xadd(keys.outbox(APP_A), {"e": "not json"})
    good = emit(store, APP_A)
    worker = Worker(store, fast)
    drain(worker, lambda: len(rx.requests) == 1)
    assert ids(rx) == [good]
    assert [d["last_error"] for d in webhooks.dead_letters(store, APP_A)] == ["malformed event"]
    worker.close()


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    backoff = Backoff(base_seconds=1, cap_seconds=30)
    assert [backoff.ceiling(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    import random

    rng = random.Random(7)
    delays = [backoff.delay(4, rng) for _ in range(200)]
    assert all(0 <= d <= 8 for d in delays)
    assert min(delays) < 2 and max(delays) > 6  # spread over the whole window (full jitter)


def test_secret_rotation_signs_with_both_secrets_during_the_overlap(
    store: Any, fast: Settings, receivers: list[Receiver]
) -> None:
    old = "brk_whsec_" + "o" * 43
    rx = Receiver()
    receivers.append(rx)
    add_app(store, APP_A, rx.url)
    store.redis.hset(
        keys.app(APP_A),
        mapping={
            "webhook_secret_previous": old,
            "webhook_secret_previous_expires": str(int(time.time()) + 3600),
        },
    )
    emit(store, APP_A)
    worker = Worker(store, fast)
    assert worker.run_once() == ["delivered"]
    req = rx.requests[0]
    assert verify_signature(SECRET, req.headers["Broker-Signature"], req.body) is True
    assert (
        verify_signature(old, req.headers["Broker-Signature"], req.body) is True
    )  # receiver not yet updated
    store.redis.hset(keys.app(APP_A), "webhook_secret_previous_expires", str(int(time.time()) - 1))
    emit(store, APP_A)
    assert worker.run_once() == ["delivered"]
    req = rx.requests[1]
    assert verify_signature(SECRET, req.headers["Broker-Signature"], req.body) is True
    assert verify_signature(old, req.headers["Broker-Signature"], req.body) is False  # overlap over
    worker.close()


def test_worker_survives_a_redis_outage_and_delivers_afterwards(
    store: Any, fast: Settings, redis_server: Any, receivers: list[Receiver]
) -> None:
    rx = Receiver()
    receivers.append(rx)
    add_app(store, APP_A, rx.url)
    settings = replace(fast, webhook_poll_ms=20)
    worker = Worker(store, settings)
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    redis_server.stop()
    try:
        runner.start()
        with pytest.raises(redis.ConnectionError):
            store.redis.ping()
        time.sleep(0.1)  # a few failing polls
        assert runner.is_alive()
    finally:
        redis_server.start()
    event_id = emit(store, APP_A)
    rx.wait_for(1)
    stop.set()
    runner.join(15)
    assert not runner.is_alive()
    assert ids(rx) == [event_id]
