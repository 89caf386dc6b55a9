"""Standard Webhooks (issue 16 item 8): an app verifies every event with the off-the-shelf
``standardwebhooks`` library and the ``whsec_`` secret the broker gave it; secrets issued before
keep working; the deprecated ``Broker-Signature`` is still sent for the transition."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from broker.config import Settings
from broker.events.webhooks import Worker, verify_signature
from broker.storage import keys
from tests.support.apps import org_payload
from tests.support.factories import make_user
from tests.support.webhook_receiver import Received, Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The receivers here are on loopback: allow it, as development does (BROKER_WEBHOOK_ALLOW_PRIVATE)."""
    return replace(settings, webhook_allow_private=True)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return replace(settings, webhook_backoff_base_ms=1, webhook_backoff_cap_seconds=1, webhook_max_attempts=4)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def auth(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.platform_api_key}"}


def register(client: Any, store: Any, auth: dict[str, str], url: str) -> tuple[str, str]:
    """An org app registered over the platform API, as an operator would; (client_id, secret)."""
    payload = org_payload(make_user(store), webhook_url=url)
    response = client.post("/internal/v1/apps", json=payload, headers=auth)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return body["client_id"], body["webhook_secret"]


def suspend(client: Any, auth: dict[str, str], client_id: str) -> None:
    """An HTTP call that emits an event (``app.suspended``) to the app."""
    assert client.post(f"/internal/v1/apps/{client_id}/suspend", headers=auth).status_code == 200


def deliver_one(store: Any, settings: Settings, rx: Receiver) -> Received:
    before = len(rx.requests)
    worker = Worker(store, settings)
    assert worker.run_once() == ["delivered"]
    worker.close()
    return rx.wait_for(before + 1)[before]


def rejects(secret: str | bytes, request: Received, body: bytes | None = None, **headers: str) -> bool:
    try:
        Webhook(secret).verify(request.body if body is None else body, {**request.headers, **headers})
    except WebhookVerificationError:
        return True
    return False


def test_an_app_verifies_events_with_the_standardwebhooks_library(
    client: Any, store: Any, settings: Settings, auth: dict[str, str], rx: Receiver
) -> None:
    client_id, secret = register(client, store, auth, rx.url)
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    suspend(client, auth, client_id)
    req = deliver_one(store, settings, rx)

    event = Webhook(secret).verify(req.body, req.headers)  # the library, as an app would call it
    assert event["type"] == "app.suspended" and event["data"] == {"status": "suspended"}
    assert req.headers["webhook-id"] == event["id"]
    assert abs(int(req.headers["webhook-timestamp"]) - time.time()) < 3600
    assert req.headers["webhook-signature"].startswith("v1,") and " " not in req.headers["webhook-signature"]

    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert rejects(other, req)  # another app's secret
    assert rejects(secret, req, body=req.body.replace(b"suspended", b"restored"))  # tampered body
    assert rejects(secret, req, **{"webhook-id": "evt_other"})  # the id is signed
    assert rejects(secret, req, **{"webhook-timestamp": str(int(time.time()) - 3600)})  # stale: replay


def test_every_retry_carries_the_same_webhook_id(
    client: Any, store: Any, fast: Settings, auth: dict[str, str]
) -> None:
    rx = Receiver(respond=lambda seen, _body: 500 if not seen else 200)
    try:
        client_id, secret = register(client, store, auth, rx.url)
        suspend(client, auth, client_id)
        worker = Worker(store, fast)
        for _ in range(200):
            if len(rx.requests) >= 2:
                break
            worker.run_once()
            time.sleep(0.005)
        worker.close()
        first, second = rx.wait_for(2)[:2]
        assert (first.status, second.status) == (500, 200)
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == json.loads(second.body)["id"]
        for req in (first, second):
            Webhook(secret).verify(req.body, req.headers)
    finally:
        rx.stop()


def test_a_rotated_secret_signs_beside_the_new_one_until_the_overlap_ends(
    client: Any, store: Any, settings: Settings, auth: dict[str, str], rx: Receiver
) -> None:
    client_id, old = register(client, store, auth, rx.url)
    rotated = client.post(f"/internal/v1/apps/{client_id}/webhook-secret", headers=auth)
    assert rotated.status_code == 200
    new = rotated.get_json()["webhook_secret"]
    assert new.startswith("whsec_") and new != old
    suspend(client, auth, client_id)
    req = deliver_one(store, settings, rx)
    assert len(req.headers["webhook-signature"].split(" ")) == 2  # space-separated, one per secret
    Webhook(new).verify(req.body, req.headers)
    Webhook(old).verify(req.body, req.headers)  # a receiver not yet updated still verifies

    store.redis.hset(keys.app(client_id), "webhook_secret_previous_expires", str(int(time.time()) - 1))
    assert client.post(f"/internal/v1/apps/{client_id}/restore", headers=auth).status_code == 200
    req = deliver_one(store, settings, rx)
    Webhook(new).verify(req.body, req.headers)
    assert rejects(old, req)  # overlap over


def test_a_secret_issued_before_standard_webhooks_keeps_working(
    store: Any, settings: Settings, client: Any, auth: dict[str, str], rx: Receiver
) -> None:
    """An app registered by the previous release (``brk_whsec_...`` stored in clear) is not asked to
    re-register: its key is the secret's UTF-8 bytes, its whsec form base64 of those bytes."""
    client_id, _ = register(client, store, auth, rx.url)
    legacy = "brk_whsec_" + "L" * 43
    store.redis.hset(keys.app(client_id), "webhook_secret", legacy)  # as the previous release wrote it
    suspend(client, auth, client_id)
    req = deliver_one(store, settings, rx)

    Webhook(legacy.encode()).verify(req.body, req.headers)
    Webhook("whsec_" + base64.b64encode(legacy.encode()).decode()).verify(req.body, req.headers)
    # Transition: the deprecated header is still there, unchanged, for receivers not yet switched.
    assert verify_signature(legacy, req.headers["Broker-Signature"], req.body)
    assert req.headers["Broker-Event-Id"] == req.headers["webhook-id"]


def test_the_deprecated_header_is_sent_for_new_secrets_too(
    client: Any, store: Any, settings: Settings, auth: dict[str, str], rx: Receiver
) -> None:
    client_id, secret = register(client, store, auth, rx.url)
    suspend(client, auth, client_id)
    req = deliver_one(store, settings, rx)
    assert verify_signature(secret, req.headers["Broker-Signature"], req.body)
    assert not verify_signature(secret + "x", req.headers["Broker-Signature"], req.body)


def test_revoking_the_previous_secret_ends_its_signature_at_the_next_delivery(
    client: Any, store: Any, settings: Settings, auth: dict[str, str], rx: Receiver
) -> None:
    """A leaked webhook secret: rotate, then revoke the previous one; the next delivery carries only
    the new secret's signature, long before the overlap would have ended."""
    client_id, old = register(client, store, auth, rx.url)
    new = client.post(f"/internal/v1/apps/{client_id}/webhook-secret", headers=auth).get_json()[
        "webhook_secret"
    ]
    revoked = client.post(f"/internal/v1/apps/{client_id}/webhook-secret/revoke-previous", headers=auth)
    assert revoked.status_code == 200
    assert revoked.get_json() == {"client_id": client_id, "revoked": True}
    suspend(client, auth, client_id)
    req = deliver_one(store, settings, rx)
    assert len(req.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(req.body, req.headers)
    assert rejects(old, req)
    again = client.post(f"/internal/v1/apps/{client_id}/webhook-secret/revoke-previous", headers=auth)
    assert again.get_json() == {"client_id": client_id, "revoked": False}  # nothing left to revoke
    missing = client.post(
        "/internal/v1/apps/app_0000000000000000/webhook-secret/revoke-previous", headers=auth
    )
    assert missing.status_code == 404
