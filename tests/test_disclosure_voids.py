"""A disclosure whose record cannot be confirmed is not a disclosure (issue 10, item 3).

When WAIT does not confirm a journal record, or the request fails after the record was written,
the request is refused (503, no data) and the record is voided: the sequencer drops it, or, if it
was already in the append-only ledger, appends a correction; the person's history never shows it
as delivered, on the page and in the API alike.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from broker.app import create_app
from broker.core.keyring import Keyring
from broker.gate import disclosure as gate
from broker.gate.disclosure import Gate, void_request
from broker.ledger import storage
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from broker.storage.store import Store
from tests.support.client import bearer
from tests.support.factories import make_token, make_user, raw_app, raw_grant
from tests.support.ledger import journal_records, log_of
from tests.support.privacy import index_grant, sequence
from tests.support.signin import session_sign_in


@pytest.fixture(autouse=True)
def no_leftover_voids() -> Any:
    yield
    gate._unconfirmed.clear()  # pending voids of this process belong to this test's Redis


@pytest.fixture
def app(app: Any) -> Any:
    app.config["WTF_CSRF_ENABLED"] = False
    return app


@pytest.fixture
def person(store: Store, settings: Any) -> dict[str, Any]:
    uid = make_user(store, username="alice", nickname="Alice")
    client_id = raw_app(store, developer_id="usr_dev1", name="Notes")
    gid = raw_grant(store, client_id, uid, "openid profile", "user_id nickname")
    index_grant(store, client_id, uid)
    token = make_token(
        store, settings, client_id, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
    )
    return {"uid": uid, "client_id": client_id, "token": token}


@pytest.fixture
def waiting_app(settings: Any, redis_server: Any, store: Store) -> Any:
    """The app with WAIT 1 against our single node: no replica can ever confirm, so WAIT fails."""
    waiting = Store.from_url(redis_server.url, wait_replicas=1)
    waiting.wait_timeout_ms = 50
    application = create_app(settings, waiting)
    application.config["TESTING"] = True
    yield application
    waiting.close()


def history(client: Any, uid: str) -> tuple[list[dict[str, Any]], str]:
    session_sign_in(client, uid)
    api = client.get("/privacy/v1/disclosures")
    assert api.status_code == 200
    page = client.get("/privacy/disclosures")
    assert page.status_code == 200
    return api.get_json()["records"], page.get_data(as_text=True)


def test_unconfirmed_record_is_refused_voided_and_never_sequenced(
    waiting_app: Any, client: Any, store: Store, settings: Any, person: dict[str, Any]
) -> None:
    response = waiting_app.test_client().get("/v1/me", headers=bearer(person["token"]))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = response.get_data(as_text=True)
    assert "Alice" not in body and "user_id" not in body
    [record] = journal_records(store, person["client_id"])  # invariant 1: written before anything
    request_id = response.headers["X-Request-Id"]
    assert record["request_id"] == request_id
    assert request_id in store.redis.hgetall(keys.journal_voids(person["client_id"]))

    result = Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
    assert (result.appended, result.voided) == (0, 1)
    assert storage.size(store, log_of(person["uid"], store)) == 0
    assert journal_records(store, person["client_id"]) == []
    records, html = history(client, person["uid"])
    assert records == []
    assert 'id="no-disclosures"' in html


def test_a_confirmed_disclosure_is_still_delivered(
    client: Any, store: Store, settings: Any, person: dict
) -> None:
    response = client.get("/v1/me", headers=bearer(person["token"]))
    assert response.status_code == 200
    assert store.redis.exists(keys.journal_voids(person["client_id"])) == 0
    sequence(store, settings)
    [entry], html = history(client, person["uid"])
    assert entry["delivered"] is True and entry["correction"] is False and entry["corrected_by"] is None
    assert 'data-delivered="true"' in html and "Not delivered" not in html


def test_void_after_sequencing_appends_a_correction_and_both_say_not_delivered(
    client: Any, store: Store, settings: Any, person: dict[str, Any]
) -> None:
    response = client.get("/v1/me", headers=bearer(person["token"]))
    assert response.status_code == 200
    sequence(store, settings)
    assert storage.size(store, log_of(person["uid"], store)) == 1
    assert void_request(store, person["client_id"], response.headers["X-Request-Id"], 1)

    result = Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
    assert (result.appended, result.corrected) == (1, 1)
    assert (
        storage.size(store, log_of(person["uid"], store)) == 2
    )  # append-only: the original stays, a correction follows
    again = Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
    assert again.corrected == 0 and storage.size(store, log_of(person["uid"], store)) == 2  # corrected once

    records, html = history(client, person["uid"])
    by_index = {e["index"]: e for e in records}
    original, correction = by_index[0], by_index[1]
    assert original["delivered"] is False and original["corrected_by"] == 1
    assert correction["delivered"] is False and correction["correction"] is True
    assert correction["record"]["corrects"] == original["record"]["id"]
    assert correction["record"]["corrects_index"] == 0
    assert correction["record"]["person"] == person["uid"]
    assert 'data-delivered="true"' not in html
    assert html.count('data-delivered="false"') == 2
    assert "Not delivered" in html and "Correction: the entry at leaf 0 was not delivered" in html
    [held] = client.get("/privacy/v1/apps").get_json()["apps"]
    assert held["last_disclosure_at"] is None  # nothing was ever delivered to this app


def test_a_void_for_a_record_pruned_with_its_id_settles_and_appends_nothing(
    client: Any, store: Store, settings: Any, person: dict[str, Any]
) -> None:
    """``broker ledger prune`` drops a pruned record's id with its body: a void that arrives after
    that finds nothing to correct (the body is gone either way) and appends nothing."""
    from broker.ledger.commands import prune

    response = client.get("/v1/me", headers=bearer(person["token"]))
    assert response.status_code == 200
    sequence(store, settings)
    log = log_of(person["uid"], store)
    assert prune(store, time.time() + 1) == 1
    assert not store.redis.exists(keys.ledger_ids(log, 0))
    assert void_request(store, person["client_id"], response.headers["X-Request-Id"], 1)
    result = Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
    assert (result.appended, result.corrected) == (0, 0) and storage.size(store, log) == 1
    assert storage.pruned_flags(store, log, 0, 1) == [True]


def test_pruning_a_voided_record_and_its_correction_forgets_the_void_mark(
    client: Any, store: Store, settings: Any, person: dict[str, Any]
) -> None:
    """The mark that a record was corrected (``ledger_voided``) goes when the record is pruned."""
    from broker.ledger.commands import prune

    response = client.get("/v1/me", headers=bearer(person["token"]))
    sequence(store, settings)
    log = log_of(person["uid"], store)
    assert void_request(store, person["client_id"], response.headers["X-Request-Id"], 1)
    assert Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once().corrected == 1
    assert store.redis.hlen(keys.ledger_voided(log)) == 1
    assert prune(store, time.time() + 1) == 2
    assert not store.redis.exists(keys.ledger_voided(log))


def test_a_failure_after_the_record_voids_it(
    client: Any, store: Store, settings: Any, person: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Gate, *args: Any) -> Any:
        raise redis.ConnectionError("connection lost while reading the profile")

    monkeypatch.setattr(Gate, "profiles", broken)
    response = client.get("/v1/me", headers=bearer(person["token"]))
    assert response.status_code == 503
    assert response.headers["X-Request-Id"] in store.redis.hgetall(keys.journal_voids(person["client_id"]))
    result = Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
    assert (result.appended, result.voided) == (0, 1)


def test_with_wait_the_sequencer_holds_young_records_back(
    client: Any, redis_server: Any, store: Store, settings: Any, person: dict[str, Any]
) -> None:
    assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 200
    waiting = Store.from_url(redis_server.url, wait_replicas=1)
    keyring = Keyring(settings.signing_keys_file)
    sequencer = Sequencer(waiting, keyring, settings)
    assert sequencer.holdback_ms == waiting.wait_timeout_ms + 2000
    held = sequencer.run_once()
    assert held.appended == 0 and len(journal_records(store, person["client_id"])) == 1
    waiting.close()
    assert Sequencer(store, keyring, settings, holdback_ms=0).run_once().appended == 1


def test_voids_are_forgotten_once_settled(store: Store, settings: Any, person: dict[str, Any]) -> None:
    key = keys.journal_voids(person["client_id"])
    store.redis.hset(key, "old", json.dumps({"time": 1.0, "records": 1}))
    store.redis.sadd(keys.voids_index(), person["client_id"])
    Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
    assert store.redis.exists(key) == 0
    assert store.redis.sismember(keys.voids_index(), person["client_id"]) == 0


def test_a_void_replicas_did_not_confirm_is_written_again_until_confirmed(
    redis_server: Any, store: Store, settings: Any, person: dict[str, Any]
) -> None:
    waiting = Store.from_url(redis_server.url, wait_replicas=1)  # no replica: WAIT never confirms
    waiting.wait_timeout_ms = 50
    assert void_request(waiting, person["client_id"], "req-unconfirmed", 1) is False
    assert gate._unconfirmed == {
        (person["client_id"], "req-unconfirmed"): (1, pytest.approx(time.time(), abs=60))
    }
    assert gate.retry_unconfirmed_voids(waiting) == 1  # still not confirmed: kept
    waiting.close()
    store.redis.delete(keys.journal_voids(person["client_id"]))  # as if a failover lost the first void
    # the sequencer thread writes it again, here to a primary where WAIT is satisfied
    Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
    assert gate._unconfirmed == {}
    assert "req-unconfirmed" in store.redis.hgetall(keys.journal_voids(person["client_id"]))
