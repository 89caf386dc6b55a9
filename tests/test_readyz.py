"""``/readyz`` checks what requests need beside Redis: the configuration (secrets, a current signing
key for id tokens and for the ledger) and a scope catalog that offers something."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from broker.app import create_app
from broker.config import Settings
from broker.core.catalog import Catalog
from broker.storage.store import Store


def test_ready_reports_every_check_and_the_catalog_version(client: Any, app: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["checks"] == {"redis": True, "configuration": True, "scope_catalog": True}
    assert body["scope_catalog_version"] == app.extensions["broker.catalog"].version
    assert "problems" not in body


def test_an_unreadable_signing_keys_file_makes_it_unready(client: Any, settings: Settings) -> None:
    settings.signing_keys_file.write_text("not a JWK set")
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["configuration"] is False and body["checks"]["redis"] is True
    assert any("not a JWK set" in p for p in body["problems"]["configuration"])


def test_retired_signing_keys_make_it_unready(client: Any, settings: Settings) -> None:
    data = json.loads(settings.signing_keys_file.read_text())
    for key in data["keys"]:
        key["exp"] = 1  # retired long ago
    settings.signing_keys_file.write_text(json.dumps(data))
    body = client.get("/readyz").get_json()
    assert body["checks"]["configuration"] is False
    assert len(body["problems"]["configuration"]) == 2  # no current id-token key, no ledger key
    assert all("broker keys rotate" in p for p in body["problems"]["configuration"])
    assert '"d"' not in json.dumps(body)  # no key material in the answer


def test_a_catalog_without_scopes_makes_it_unready(settings: Settings, store: Store) -> None:
    app = create_app(settings, store)
    app.extensions["broker.catalog"] = Catalog(fields={}, scopes={}, version="empty", files=())
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["scope_catalog"] is False
    assert response.get_json()["problems"]["scope_catalog"] == ["the scope catalog has no scopes"]


def test_missing_secrets_make_it_unready(settings: Settings, store: Store) -> None:
    app = create_app(replace(settings, pairwise_key=""), store)
    body = app.test_client().get("/readyz").get_json()
    assert body["checks"]["configuration"] is False
    assert body["problems"]["configuration"] == ["BROKER_PAIRWISE_KEY is empty"]
