"""Developer console: failed deliveries are listed with their attempts and can be redelivered."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker.config import Settings
from broker.events import outbox as events
from broker.events import webhooks
from broker.events.webhooks import Worker
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
