"""``/metrics`` on the main port (absent without BROKER_METRICS_TOKEN, bearer-protected with it) and
what each instrumentation point counts, read back through ``/metrics`` as Prometheus would.

Counters live for the whole test process, so each test compares before and after.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.app import create_app
from broker.config import ConfigError, Settings
from broker.core.keyring import Keyring
from broker.events import outbox as events
from broker.events.webhooks import Worker
from broker.ledger import logs
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from broker.storage.embedded import free_port
from broker.storage.store import Store
from tests.support.client import bearer
from tests.support.factories import make_installation, make_org, make_token, make_user, raw_app
from tests.support.ledger import journal_records
from tests.support.webhook_receiver import Receiver

TOKEN = "t" * 40


@pytest.fixture
def metered(settings: Settings, store: Store) -> Any:
    """A client of an app whose /metrics opens with TOKEN."""
    app = create_app(replace(settings, metrics_token=TOKEN), store)
    app.config["TESTING"] = True
    return app.test_client()


def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def org(store: Store, settings: Settings) -> dict[str, Any]:
    people = [make_user(store, nickname=f"member{i}") for i in range(3)]
    oid = make_org(store, people)
    cid = raw_app(store, kind="org_app")
    iid = make_installation(store, cid, oid)
    token = make_token(
        store, settings, cid, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    return {"oid": oid, "client_id": cid, "token": token}


def test_no_metrics_on_the_main_port_without_a_token_setting(client: Any) -> None:
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=bearer(TOKEN)).status_code == 404


def test_metrics_need_the_bearer_token(metered: Any) -> None:
    for headers in ({}, bearer("x" * 40), {"Authorization": f"Basic {TOKEN}"}, bearer(TOKEN[:-1])):
        refused = metered.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith('Bearer realm="broker"')
        assert b"broker_" not in refused.get_data()
    assert (
        b"# TYPE broker_disclosures_total counter"
        in metered.get("/metrics", headers=bearer(TOKEN)).get_data()
    )


def test_disclosures_refusals_and_requests_are_counted(
    metered: Any, store: Store, org: dict[str, Any]
) -> None:
    before = scrape(metered)
    url = f"/v1/orgs/{org['oid']}/members"
    assert metered.get(url, headers=bearer(org["token"])).status_code == 200
    assert metered.get(url, headers=bearer(f"brk_at_{org['client_id']}.{'x' * 43}")).status_code == 401
    assert metered.get(url, headers=bearer("not-a-broker-token")).status_code == 401
    other_org = make_org(store, [make_user(store)])
    assert metered.get(f"/v1/orgs/{other_org}/members", headers=bearer(org["token"])).status_code == 404
    after = scrape(metered)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("broker_disclosures_total", kind="installation") == 3  # one record per member
    assert delta("broker_gate_refusals_total", reason="invalid_token") == 1
    assert delta("broker_gate_refusals_total", reason="not_found") == 1
    assert delta("broker_gate_refusals_total", reason="malformed_token") == 1
    route = "/v1/orgs/<org_id>/members"
    assert delta("broker_http_request_duration_seconds_count", route=route, method="GET", status="200") == 1
    assert delta("broker_http_request_duration_seconds_count", route=route, method="GET", status="401") == 2
    assert metered.get(f"/nothing/{org['oid']}").status_code == 404
    text = metered.get("/metrics", headers=bearer(TOKEN)).get_data(as_text=True)
    assert org["oid"] not in text  # routes are URL rules: no id ever becomes a label


def test_token_issuance_is_counted_by_grant(
    metered: Any, store: Store, settings: Settings, org: dict[str, Any]
) -> None:
    from tests.support.factories import make_app

    cid, secret = make_app(store, settings, kind="org_app", scopes="org.members.read")
    make_installation(store, cid, org["oid"])
    before = scrape(metered)
    response = metered.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": org["oid"]},
        headers={"Authorization": basic(cid, secret)},
    )
    assert response.status_code == 200, response.get_json()
    after = scrape(metered)
    name = "broker_token_issuance_total"
    labels = {"grant": "client_credentials", "outcome": "issued"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


def basic(user: str, password: str | None) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for r in started:
        r.stop()


def test_webhook_deliveries_and_dead_letters_are_counted(
    metered: Any, store: Store, settings: Settings, receivers: list[Receiver]
) -> None:
    rx = Receiver(respond=lambda _seen, body: 200 if json.loads(body)["data"]["ok"] else 503)
    receivers.append(rx)
    client_id = "app_00000000000000aa"
    store.redis.hset(
        keys.app(client_id),
        mapping={
            "client_id": client_id,
            "status": "active",
            "webhook_url": rx.url,
            "webhook_secret": "s" * 43,
        },
    )
    store.redis.zadd(keys.apps_all(), {client_id: time.time()})
    for ok in (False, True):
        pipe = store.redis.pipeline(transaction=True)
        events.emit(pipe, client_id, "grant.created", {"ok": ok})
        pipe.execute()
    before = scrape(metered)
    worker = Worker(
        store,
        replace(settings, webhook_max_attempts=1, webhook_timeout_seconds=5, webhook_allow_private=True),
    )
    try:
        for _ in range(50):
            worker.run_once()
            if len(rx.requests) >= 2:
                break
            time.sleep(0.01)
    finally:
        worker.close()
    after = scrape(metered)
    for outcome in ("dead", "delivered"):
        name, labels = "broker_webhook_deliveries_total", {"outcome": outcome}
        assert value(after, name, **labels) - value(before, name, **labels) == 1
    assert (
        value(after, "broker_webhook_dead_letters_total") - value(before, "broker_webhook_dead_letters_total")
        == 1
    )


def test_redis_errors_are_counted(metered: Any) -> None:
    before = scrape(metered)
    gone = Store.from_url(f"redis://127.0.0.1:{free_port()}", cluster=False, timeout_ms=200, breaker_ms=60000)
    assert gone.ping() is False  # connection refused: the breaker opens
    assert gone.ping() is False  # refused by the open breaker without trying
    gone.close()
    after = scrape(metered)
    for kind in ("connection", "circuit_open"):
        name = "broker_redis_errors_total"
        assert value(after, name, kind=kind) - value(before, name, kind=kind) >= 1


def test_a_stuck_sequencer_shows_as_backlog(
    metered: Any, store: Store, settings: Settings, org: dict[str, Any]
) -> None:
    assert metered.get(f"/v1/orgs/{org['oid']}/members", headers=bearer(org["token"])).status_code == 200
    assert len(journal_records(store, org["client_id"])) == 3
    for log in logs.names(store):  # someone else holds every log's lock, and hangs
        store.redis.set(keys.ledger_lock(log), "another-process", px=60000)
    sequencer = Sequencer(store, Keyring(settings.signing_keys_file), settings)
    sequencer.run_forever(OnePass())
    samples = scrape(metered)
    assert value(samples, "broker_ledger_pending_records") == 3
    assert value(samples, "broker_ledger_oldest_pending_seconds") > 0
    assert len(journal_records(store, org["client_id"])) == 3  # nothing was sequenced
    store.redis.delete(*(keys.ledger_lock(log) for log in logs.names(store)))
    sequencer.run_forever(OnePass())
    samples = scrape(metered)
    assert value(samples, "broker_ledger_pending_records") == 0
    assert value(samples, "broker_ledger_oldest_pending_seconds") == 0


class OnePass(threading.Event):
    """Lets ``run_forever`` (the loop that measures the backlog) make exactly one pass."""

    def __init__(self) -> None:
        super().__init__()
        self.passes = 0

    def is_set(self) -> bool:
        self.passes += 1
        return self.passes > 1

    def wait(self, timeout: float | None = None) -> bool:
        return True


def test_metrics_settings_are_validated(tmp_path: Path) -> None:
    base = {"BROKER_DATA_DIR": str(tmp_path / "data"), "BROKER_PORT": "8080"}
    with pytest.raises(ConfigError, match="BROKER_METRICS_PORT: must differ from BROKER_PORT"):
        Settings.from_env({**base, "BROKER_METRICS_PORT": "8080"})
    with pytest.raises(ConfigError, match="BROKER_METRICS_TOKEN: expected at least 32 characters"):
        Settings.from_env({**base, "BROKER_METRICS_TOKEN": "short"})
    assert Settings.from_env({**base, "BROKER_METRICS_PORT": "9100"}).metrics_port == 9100
    assert "t" * 40 not in repr(Settings.from_env({**base, "BROKER_METRICS_TOKEN": "t" * 40}))


def test_the_example_alert_rules_name_only_real_series(metered: Any) -> None:
    import re

    import yaml

    from tests.support.environment import ROOT

    rules = yaml.safe_load((ROOT / "docs" / "prometheus-alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for expr in expressions for name in re.findall(r"broker_[a-z_]+", expr)}
    assert len(named) >= 6
    text = metered.get("/metrics", headers=bearer(TOKEN)).get_data(as_text=True)
    families = {family.name for family in text_string_to_metric_families(text)}
    for name in named:
        assert re.sub(r"_(total|bucket|count|sum)$", "", name) in families, name
