"""Developer console: failed deliveries are listed with their attempts and can be redelivered."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker.config import Settings
from broker.events import outbox as events
from broker.events import webhooks
from broker.events.webhooks import Worker
from broker.storage import keys
from tests.support.developer import register
from tests.support.environment import make_settings
from tests.support.factories import make_user
from tests.support.signin import session_sign_in
from tests.support.webhook_receiver import Receiver


@pytest.fixture
def settings(tmp_path: Path, redis_server: Any) -> Settings:
    """The receivers of this file are on loopback: private destinations allowed explicitly."""
    return make_settings(tmp_path, redis_server.url, webhook_allow_private=True)


def _dead_letter(store: Any, settings: Any, client_id: str) -> str:
    """Emit one event that the (always failing) receiver never accepts, until it is dead-lettered."""
    pipe = store.redis.pipeline(transaction=True)
    event_id = events.emit(pipe, client_id, "grant.created", {"user": "u_x"})
    pipe.execute()
    fast = replace(settings, webhook_backoff_base_ms=1, webhook_backoff_cap_seconds=1, webhook_max_attempts=2)
    worker = Worker(store, fast)
    try:
        for _ in range(200):
            if webhooks.dead_letters(store, client_id):
                break
            worker.run_once()
            time.sleep(0.005)
    finally:
        worker.close()
    assert [d["event"]["id"] for d in webhooks.dead_letters(store, client_id)] == [event_id]
    return event_id


def test_dead_letters_are_shown_and_redelivered_from_the_page_and_the_api(
    app: Any, client: Any, store: Any, settings: Any
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    rx = Receiver(respond=lambda _seen, _body: 503)
    try:
        uid = make_user(store, "devon", "pw-devon-123")
        session_sign_in(client, uid)
        client_id = register(client, webhook_url=rx.url)
        event_id = _dead_letter(store, settings, client_id)
    finally:
        rx.stop()

    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    assert 'class="attempt"' in html and "HTTP 503" in html
    action = f"/developer/apps/{client_id}/events/{event_id}/redeliver"
    assert f'action="{action}"' in html and ">Redeliver</button>" in html

    response = client.post(action)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/developer/apps/{client_id}"
    assert webhooks.dead_letters(store, client_id) == []
    assert client.post(action).status_code == 404  # no longer dead
    assert "No failed deliveries." in client.get(f"/developer/apps/{client_id}").get_data(as_text=True)

    assert client.get(f"/developer/v1/apps/{client_id}").get_json()["deliveries"]["dead"] == []
    api = f"/developer/v1/apps/{client_id}/events/{event_id}/redeliver"
    assert client.post(api).status_code == 404
    unknown = client.post(f"/developer/v1/apps/{client_id}/events/evt_nope/redeliver")
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"


def test_redeliver_through_the_json_api_and_not_for_someone_elses_app(
    app: Any, client: Any, store: Any, settings: Any
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    rx = Receiver(respond=lambda _seen, _body: 503)
    try:
        owner = make_user(store, "devon", "pw-devon-123")
        session_sign_in(client, owner)
        client_id = register(client, webhook_url=rx.url)
        event_id = _dead_letter(store, settings, client_id)
    finally:
        rx.stop()
    api = f"/developer/v1/apps/{client_id}/events/{event_id}/redeliver"

    session_sign_in(client, make_user(store, "mallory", "pw-mallory-123"))
    assert client.post(api).status_code == 404
    assert client.post(f"/developer/apps/{client_id}/events/{event_id}/redeliver").status_code == 404
    assert len(webhooks.dead_letters(store, client_id)) == 1

    session_sign_in(client, owner)
    response = client.post(api)
    assert response.status_code == 200
    assert response.get_json() == {"client_id": client_id, "event_id": event_id, "queued": True}
    assert webhooks.dead_letters(store, client_id) == []


def _dead_many(store: Any, settings: Any, client_id: str, n: int) -> list[str]:
    """``n`` events dead-lettered by the refusing receiver, oldest first."""
    pipe = store.redis.pipeline(transaction=True)
    ids = [events.emit(pipe, client_id, "grant.created", {"user": f"u_{i}"}) for i in range(n)]
    pipe.execute()
    once = replace(settings, webhook_backoff_base_ms=1, webhook_backoff_cap_seconds=1, webhook_max_attempts=1)
    worker = Worker(store, once)
    try:
        for _ in range(400):
            if len(webhooks.dead_letters(store, client_id)) == n:
                break
            worker.run_once()
            time.sleep(0.005)
    finally:
        worker.close()
    assert sorted(d["event"]["id"] for d in webhooks.dead_letters(store, client_id)) == sorted(ids)
    return ids


def _dead_state(store: Any, client_id: str) -> tuple[Any, ...]:
    return (
        sorted(d["event"]["id"] for d in webhooks.dead_letters(store, client_id, 1000)),
        store.redis.xlen(keys.outbox(client_id)),
    )


def test_replay_and_purge_through_the_json_api_all_or_nothing(
    app: Any, client: Any, store: Any, settings: Any
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    accept = threading.Event()
    rx = Receiver(respond=lambda _seen, _body: 200 if accept.is_set() else 503)
    try:
        owner = make_user(store, "devon", "pw-devon-123")
        session_sign_in(client, owner)
        client_id = register(client, webhook_url=rx.url)
        ids = _dead_many(store, settings, client_id, 4)
        replay = f"/developer/v1/apps/{client_id}/dead-letters/replay"
        purge = f"/developer/v1/apps/{client_id}/dead-letters/purge"

        before = _dead_state(store, client_id)
        for body in ({"event_ids": [ids[0], "evt_nope"]}, {"event_ids": ["evt_nope"]}):
            for url in (replay, purge):
                response = client.post(url, json=body)
                assert response.status_code == 404, response.get_data(as_text=True)
                assert (
                    response.get_json()["error"] == "not_found"
                    and "evt_nope" in response.get_json()["detail"]
                )
        for body in (
            {},
            {"all": True, "event_ids": [ids[0]]},
            {"event_ids": []},
            {"event_ids": "x"},
            {"all": False},
            {"all": True, "extra": 1},
            {"event_ids": [""]},
        ):
            for url in (replay, purge):
                assert client.post(url, json=body).status_code == 400, body
        assert client.post(replay, data="x", content_type="text/plain").status_code == 415
        assert _dead_state(store, client_id) == before  # nothing changed by any of those

        session_sign_in(client, make_user(store, "mallory", "pw-mallory-123"))
        assert client.post(replay, json={"all": True}).status_code == 404
        assert client.post(purge, json={"event_ids": [ids[0]]}).status_code == 404
        assert _dead_state(store, client_id) == before

        session_sign_in(client, owner)
        response = client.post(purge, json={"event_ids": [ids[3]]})
        assert response.status_code == 200
        assert response.get_json() == {"client_id": client_id, "purged": [ids[3]]}

        accept.set()
        response = client.post(replay, json={"event_ids": [ids[1], ids[0]]})
        assert response.get_json() == {"client_id": client_id, "replayed": [ids[0], ids[1]]}  # oldest first
        response = client.post(replay, json={"all": True})
        assert response.get_json() == {"client_id": client_id, "replayed": [ids[2]]}
        assert webhooks.dead_letters(store, client_id) == []

        worker = Worker(store, settings)
        try:
            for _ in range(400):
                if len([r for r in rx.requests if r.status == 200]) == 3:
                    break
                worker.run_once()
                time.sleep(0.005)
        finally:
            worker.close()
        delivered = [json.loads(r.body)["id"] for r in rx.requests if r.status == 200]
        assert delivered == [ids[0], ids[1], ids[2]]  # the purged one never goes out again
    finally:
        rx.stop()
    items = client.get(f"/developer/v1/apps/{client_id}").get_json()["deliveries"]["items"]
    audit = [(i["outcome"], i["event"], i.get("by")) for i in items if i["outcome"] in ("replayed", "purged")]
    assert audit == [
        ("replayed", ids[2], f"developer:{owner}"),
        ("replayed", "2 events", f"developer:{owner}"),
        ("purged", ids[3], f"developer:{owner}"),
    ]


def test_the_page_deletes_one_and_redelivers_or_deletes_all(
    app: Any, client: Any, store: Any, settings: Any
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    rx = Receiver(respond=lambda _seen, _body: 503)
    try:
        session_sign_in(client, make_user(store, "devon", "pw-devon-123"))
        client_id = register(client, webhook_url=rx.url)
        ids = _dead_many(store, settings, client_id, 3)
    finally:
        rx.stop()
    page = f"/developer/apps/{client_id}"
    html = client.get(page).get_data(as_text=True)
    one = f"{page}/events/{ids[0]}/purge"
    assert f'action="{one}"' in html and ">Delete</button>" in html
    assert f'action="{page}/dead-letters/replay"' in html and ">Redeliver all</button>" in html
    assert f'action="{page}/dead-letters/purge"' in html and ">Delete all</button>" in html
    assert "Failed deliveries are kept for 14 days, at most 1000." in html

    response = client.post(one)
    assert response.status_code == 303 and response.headers["Location"] == page
    assert sorted(d["event"]["id"] for d in webhooks.dead_letters(store, client_id)) == sorted(ids[1:])
    assert client.post(one).status_code == 404  # already gone
    assert client.post(f"{page}/dead-letters/resend").status_code == 404
    assert client.post(f"{page}/events/{'x' * 300}/purge").status_code == 404

    assert client.post(f"{page}/dead-letters/replay").status_code == 303
    assert "2 failed event(s) queued for redelivery." in client.get(page).get_data(as_text=True)
    assert webhooks.dead_letters(store, client_id) == []
    assert [json.loads(e["e"])["id"] for _, e in store.redis.xrange(keys.outbox(client_id))][-2:] == ids[1:]

    # the receiver is gone: the replayed two fail again (a new series of one attempt), then all go
    once = replace(settings, webhook_max_attempts=1)
    worker = Worker(store, once)
    try:
        for _ in range(400):
            if len(webhooks.dead_letters(store, client_id)) == 2:
                break
            worker.run_once()
            time.sleep(0.005)
    finally:
        worker.close()
    assert {d["last_error"] for d in webhooks.dead_letters(store, client_id)} == {"connection failed"}
    assert client.post(f"{page}/dead-letters/purge").status_code == 303
    assert "2 failed event(s) deleted." in client.get(page).get_data(as_text=True)
    assert webhooks.dead_letters(store, client_id) == []
