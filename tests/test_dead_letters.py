"""Dead letters that do not grow forever (issue 12 item 3): retention and a count cap, enforced on
write and by the worker's sweep; the outbox bound; replay and purge (library and CLI), all or nothing.

Against a real HTTP receiver on loopback; both Redis modes. No test asserts a duration: retention is
exercised with explicit clocks, or by waiting on the condition with a generous bound.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from broker.cli import main
from broker.config import Settings
from broker.errors import ValidationFailed
from broker.events import outbox as events
from broker.events import webhooks
from broker.events.webhooks import UnknownDeadLetter, Worker
from broker.storage import keys
from tests.support.webhook_receiver import Receiver

SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
APP = "app_00000000000000d1"
OTHER = "app_00000000000000d2"


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """One attempt per event (it is dead at once when refused), tiny backoff, loopback allowed."""
    return replace(
        settings,
        webhook_backoff_base_ms=1,
        webhook_backoff_cap_seconds=1,
        webhook_max_attempts=1,
        webhook_timeout_seconds=5,
        webhook_allow_private=True,  # the receivers are on loopback
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Refuses (503) until ``receiver.accept`` is set, then answers 200."""
    accept = threading.Event()
    rx = Receiver(respond=lambda _seen, _body: 200 if accept.is_set() else 503)
    rx.accept = accept  # type: ignore[attr-defined]
    yield rx
    rx.stop()


def add_app(store: Any, client_id: str, url: str) -> None:
    record = {"client_id": client_id, "name": client_id, "status": "active"}
    store.redis.hset(keys.app(client_id), mapping={**record, "webhook_url": url, "webhook_secret": SECRET})
    store.redis.zadd(keys.apps_all(), {client_id: time.time()})


def emit(store: Any, client_id: str, n: int = 1) -> list[str]:
    out = []
    for i in range(n):
        pipe = store.redis.pipeline(transaction=True)
        out.append(events.emit(pipe, client_id, "grant.created", {"user": f"u_{i}"}))
        pipe.execute()
    return out


def kill(
    store: Any, settings: Settings, client_id: str, n: int, start: float | None = None, step: float = 1.0
) -> list[str]:
    """Emit ``n`` events and dead-letter each (the receiver refuses), ``step`` clock seconds apart."""
    ids = emit(store, client_id, n)
    worker = Worker(store, settings)
    t = time.time() if start is None else start
    try:
        for i in range(n):
            assert worker.deliver_next(client_id, now=t + i * step) == "dead"
    finally:
        worker.close()
    return ids


def dead_ids(store: Any, client_id: str) -> list[str]:
    """Oldest first."""
    return [d["event"]["id"] for d in reversed(webhooks.dead_letters(store, client_id, 1000))]


def drain(worker: Worker, done: Callable[[], bool], rounds: int = 400) -> None:
    for _ in range(rounds):
        if done():
            return
        worker.run_once()
        time.sleep(0.005)
    assert done(), "condition not reached"


def delivered_ids(rx: Receiver) -> list[str]:
    return [json.loads(r.body)["id"] for r in rx.requests if r.status == 200]


def state(store: Any, client_id: str) -> tuple[Any, ...]:
    r = store.redis
    return (
        r.hgetall(keys.webhook_dead(client_id)),
        r.zrange(keys.webhook_dead_index(client_id), 0, -1, withscores=True),
        r.xrange(keys.outbox(client_id)),
        r.get(keys.webhook_cursor(client_id)),
    )


# --- retention and the count cap ------------------------------------------------------------------


def test_a_new_dead_letter_trims_those_past_retention(store: Any, fast: Settings, receiver: Receiver) -> None:
    settings = replace(fast, webhook_dead_retention_seconds=60)
    add_app(store, APP, receiver.url)
    t0 = time.time()
    first = kill(store, settings, APP, 2, start=t0)
    assert dead_ids(store, APP) == first
    # 100 seconds later (past the 60 s retention of both) one more dies: the old two go on that write
    later = kill(store, settings, APP, 1, start=t0 + 100)
    assert dead_ids(store, APP) == later
    assert store.redis.hlen(keys.webhook_dead(APP)) == 1


def test_the_sweep_deletes_dead_letters_past_retention_and_keeps_the_rest(
    store: Any, fast: Settings, receiver: Receiver
) -> None:
    settings = replace(fast, webhook_dead_retention_seconds=50)
    add_app(store, APP, receiver.url)
    add_app(store, OTHER, receiver.url)
    t0 = time.time()
    old = kill(store, settings, APP, 2, start=t0)
    young = kill(store, settings, APP, 1, start=t0 + 40)
    other = kill(store, settings, OTHER, 1, start=t0 + 45)
    worker = Worker(store, settings)
    try:
        assert worker.sweep(now=t0 + 30) == {"apps": 0, "dead_trimmed": 0, "overflowed": 0}
        totals = worker.sweep(now=t0 + 70)  # old ones dead 69-70 s ago, the young one 30 s
    finally:
        worker.close()
    assert totals["dead_trimmed"] == 2 and totals["overflowed"] == 0
    assert dead_ids(store, APP) == young and old[0] not in dead_ids(store, APP)
    assert dead_ids(store, OTHER) == other
    assert store.redis.hlen(keys.webhook_dead(APP)) == 1


def test_the_running_worker_sweeps_by_itself_with_a_short_retention(
    store: Any, fast: Settings, receiver: Receiver
) -> None:
    """Real time: 1 s retention, a sweep every second; waits on the condition, asserts no duration."""
    settings = replace(fast, webhook_dead_retention_seconds=1, webhook_sweep_seconds=1, webhook_poll_ms=50)
    add_app(store, APP, receiver.url)
    kill(store, settings, APP, 3, step=0.001)
    assert webhooks.dead_count(store, APP) == 3
    worker = Worker(store, settings)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while webhooks.dead_count(store, APP) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert webhooks.dead_count(store, APP) == 0
    assert store.redis.exists(keys.webhook_dead(APP)) == 0


def test_the_count_cap_keeps_the_newest_on_write_and_in_the_sweep(
    store: Any, fast: Settings, receiver: Receiver
) -> None:
    add_app(store, APP, receiver.url)
    capped = replace(fast, webhook_dead_max=3)
    ids = kill(store, capped, APP, 5)
    assert dead_ids(store, APP) == ids[2:]
    assert store.redis.hlen(keys.webhook_dead(APP)) == 3

    # a lower cap is applied by the next sweep, oldest first
    lower = replace(fast, webhook_dead_max=1)
    worker = Worker(store, lower)
    try:
        assert worker.sweep()["dead_trimmed"] == 2
    finally:
        worker.close()
    assert dead_ids(store, APP) == ids[4:]


def test_an_overfull_outbox_moves_its_oldest_events_to_the_dead_letters(
    store: Any, fast: Settings, receiver: Receiver
) -> None:
    settings = replace(fast, webhook_outbox_maxlen=10, webhook_max_attempts=5)
    add_app(store, APP, receiver.url)
    ids = emit(store, APP, 14)
    worker = Worker(store, settings)
    try:
        assert worker.deliver_next(APP) == "retry"  # the head is being retried
        totals = worker.sweep()
        assert totals["overflowed"] == 4
        assert store.redis.xlen(keys.outbox(APP)) == 10
        overflowed = webhooks.dead_letters(store, APP)
        assert sorted(d["event"]["id"] for d in overflowed) == sorted(ids[:4])
        assert {d["last_error"] for d in overflowed} == {"outbox overflow"}
        status = webhooks.delivery_status(store, APP)
        assert status["state"] == "idle" and status["attempts"] == "0"
        assert "4 event(s) dead-lettered" in status["last_error"]

        receiver.accept.set()  # type: ignore[attr-defined]
        drain(worker, lambda: delivered_ids(receiver) == ids[4:])
        assert webhooks.replay(store, APP, None, by="test") == ids[:4]  # in their original order
        drain(worker, lambda: delivered_ids(receiver) == ids[4:] + ids[:4])
    finally:
        worker.close()
    assert store.redis.xlen(keys.outbox(APP)) <= 1 and webhooks.dead_count(store, APP) == 0


def test_the_outbox_bound_counts_pending_events_only(store: Any, fast: Settings, receiver: Receiver) -> None:
    settings = replace(fast, webhook_outbox_maxlen=10)
    add_app(store, APP, receiver.url)
    receiver.accept.set()  # type: ignore[attr-defined]
    first = emit(store, APP, 1)
    worker = Worker(store, settings)
    try:
        assert worker.deliver_next(APP) == "delivered"  # the finished entry stays in the stream
        assert store.redis.xlen(keys.outbox(APP)) == 1
        pending = emit(store, APP, 10)
        assert worker.sweep()["overflowed"] == 0  # ten pending: within the bound
        assert [json.loads(e["e"])["id"] for _, e in store.redis.xrange(keys.outbox(APP))] == pending
        more = emit(store, APP, 3)
        assert worker.sweep()["overflowed"] == 3
        assert sorted(dead_ids(store, APP)) == sorted(pending[:3])
        assert [json.loads(e["e"])["id"] for _, e in store.redis.xrange(keys.outbox(APP))] == pending[
            3:
        ] + more
        drain(worker, lambda: delivered_ids(receiver) == first + pending[3:] + more)
    finally:
        worker.close()


def test_a_sweep_leaves_the_outbox_alone_while_a_delivery_holds_the_lease(
    store: Any, fast: Settings, receiver: Receiver
) -> None:
    settings = replace(fast, webhook_outbox_maxlen=10)
    add_app(store, APP, receiver.url)
    emit(store, APP, 12)
    store.redis.set(keys.webhook_lease(APP), "another-worker", px=60000)
    worker = Worker(store, settings)
    try:
        assert worker.sweep()["overflowed"] == 0
        assert store.redis.xlen(keys.outbox(APP)) == 12
        store.redis.delete(keys.webhook_lease(APP))
        assert worker.sweep()["overflowed"] == 2
    finally:
        worker.close()
    assert store.redis.xlen(keys.outbox(APP)) == 10


def test_the_attempt_log_stays_capped(store: Any, fast: Settings, receiver: Receiver) -> None:
    add_app(store, APP, receiver.url)
    receiver.accept.set()  # type: ignore[attr-defined]
    ids = emit(store, APP, webhooks.LOG_MAXLEN + 300)
    worker = Worker(store, fast)
    try:
        drain(worker, lambda: len(receiver.requests) == len(ids), rounds=len(ids) * 3)
    finally:
        worker.close()
    # approximate trimming (MAXLEN ~) keeps at most one stream node (100 entries) more than the cap
    assert webhooks.LOG_MAXLEN <= store.redis.xlen(keys.webhook_log(APP)) <= webhooks.LOG_MAXLEN + 100
    assert store.redis.xlen(keys.outbox(APP)) <= 1


# --- replay and purge -----------------------------------------------------------------------------


def test_replay_delivers_again_under_the_same_event_id_with_a_new_attempt_series(
    store: Any, fast: Settings, receiver: Receiver
) -> None:
    add_app(store, APP, receiver.url)
    settings = replace(fast, webhook_max_attempts=2)
    first, second = emit(store, APP, 2)
    worker = Worker(store, settings)
    try:
        drain(worker, lambda: webhooks.dead_count(store, APP) == 2)
        assert [d["attempts"] for d in webhooks.dead_letters(store, APP)] == [2, 2]
        receiver.accept.set()  # type: ignore[attr-defined]
        assert webhooks.replay(store, APP, [second], by="developer:u_dev") == [second]
        assert dead_ids(store, APP) == [first]
        drain(worker, lambda: delivered_ids(receiver) == [second])
    finally:
        worker.close()
    last = receiver.requests[-1]
    assert last.headers["webhook-id"] == second
    Webhook(SECRET).verify(last.body, last.headers)  # signed like any delivery
    attempts = [e for e in webhooks.recent_attempts(store, APP) if e["event"] == second]
    assert attempts[0]["outcome"] == "ok" and attempts[0]["attempt"] == "1"  # a new series
    replayed = [e for e in webhooks.recent_attempts(store, APP) if e["outcome"] == "replayed"]
    assert [(e["event"], e["by"]) for e in replayed] == [(second, "developer:u_dev")]


def test_purge_deletes_one_or_all_and_is_logged(store: Any, fast: Settings, receiver: Receiver) -> None:
    add_app(store, APP, receiver.url)
    ids = kill(store, fast, APP, 3)
    assert webhooks.purge(store, APP, [ids[1]], by="cli") == [ids[1]]
    assert dead_ids(store, APP) == [ids[0], ids[2]]
    assert sorted(webhooks.purge(store, APP, None, by="cli")) == sorted([ids[0], ids[2]])
    assert webhooks.dead_count(store, APP) == 0 and store.redis.exists(keys.webhook_dead(APP)) == 0
    assert webhooks.purge(store, APP, None, by="cli") == []  # nothing left: nothing to do
    assert store.redis.xlen(keys.outbox(APP)) <= 1  # purged events are not queued
    log = [(e["event"], e["outcome"]) for e in webhooks.recent_attempts(store, APP)[:2]]
    assert log == [("2 events", "purged"), (ids[1], "purged")]


@pytest.mark.parametrize("action", [webhooks.replay, webhooks.purge])
def test_an_unknown_id_changes_nothing(action: Any, store: Any, fast: Settings, receiver: Receiver) -> None:
    add_app(store, APP, receiver.url)
    add_app(store, OTHER, receiver.url)
    ids = kill(store, fast, APP, 2)
    foreign = kill(store, fast, OTHER, 1)
    before = state(store, APP)
    for bad in (["evt_nope"], [ids[0], "evt_nope"], foreign, [""], ["x" * 300]):
        with pytest.raises(UnknownDeadLetter):
            action(store, APP, bad, by="test")
        assert state(store, APP) == before
    with pytest.raises(ValidationFailed):
        action(store, APP, [], by="test")
    with pytest.raises(ValidationFailed):
        action(store, APP, ["evt_x"] * (webhooks.MAX_IDS + 1), by="test")
    assert state(store, APP) == before
    assert dead_ids(store, OTHER) == foreign


# --- broker webhooks dead list|replay|purge ----------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_server: Any, store: Any) -> None:
    for name in [k for k in os.environ if k.startswith("BROKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BROKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BROKER_REDIS_URL", redis_server.url)


def test_cli_lists_replays_and_purges(
    cli_env: None, store: Any, fast: Settings, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    add_app(store, APP, receiver.url)
    ids = kill(store, fast, APP, 3)

    assert main(["webhooks", "dead", "list", "--app", APP]) == 0
    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == ids[::-1]
    assert "grant.created" in out and "status=503" in out and SECRET not in out
    assert "3 of 3 dead letter(s)" in err
    assert main(["webhooks", "dead", "list", "--app", APP, "--json", "--limit", "1"]) == 0
    assert [json.loads(line)["event"]["id"] for line in capsys.readouterr().out.splitlines()] == [ids[2]]

    assert main(["webhooks", "dead", "replay", "--app", APP, "--id", ids[0], "--id", ids[1]]) == 0
    assert f"2 dead letter(s) of {APP} queued for delivery: {ids[0]} {ids[1]}" in capsys.readouterr().out
    assert dead_ids(store, APP) == [ids[2]]
    assert [json.loads(e["e"])["id"] for _, e in store.redis.xrange(keys.outbox(APP))][-2:] == ids[:2]

    assert main(["webhooks", "dead", "purge", "--app", APP, "--all"]) == 0
    assert f"1 dead letter(s) of {APP} deleted: {ids[2]}" in capsys.readouterr().out
    assert webhooks.dead_count(store, APP) == 0
    entries = webhooks.recent_attempts(store, APP)[:2]
    assert [(e["outcome"], e["by"]) for e in entries] == [("purged", "cli"), ("replayed", "cli")]


def test_cli_bad_input_is_a_clear_error_and_changes_nothing(
    cli_env: None, store: Any, fast: Settings, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    add_app(store, APP, receiver.url)
    ids = kill(store, fast, APP, 2)
    before = state(store, APP)
    assert main(["webhooks", "dead", "replay", "--app", APP, "--id", ids[0], "--id", "evt_nope"]) == 2
    err = capsys.readouterr().err
    assert "broker webhooks: no failed delivery 'evt_nope' for this app; nothing was changed" in err
    assert main(["webhooks", "dead", "purge", "--app", APP, "--id", "evt_nope"]) == 2
    assert "'evt_nope'" in capsys.readouterr().err
    assert main(["webhooks", "dead", "purge", "--app", APP]) == 2  # neither --id nor --all
    assert "--id EVENT_ID (repeatable) or --all" in capsys.readouterr().err
    assert main(["webhooks", "dead", "replay", "--app", APP, "--all", "--id", ids[0]]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["webhooks", "dead", "list", "--app", "app_unknown"]) == 2
    assert "no app with client id 'app_unknown'" in capsys.readouterr().err
    assert main(["webhooks", "dead", "replay", "--all"]) == 2  # --app is required
    capsys.readouterr()
    assert state(store, APP) == before
