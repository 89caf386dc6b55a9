"""DESIGN invariant 1: nothing leaves unlogged. Every answer that carries personal data has its
disclosure record committed first, naming the request; when the record cannot be written, the
answer is 503 ``temporarily_unavailable`` with no personal data."""

from __future__ import annotations

from typing import Any

import pytest

from broker.ledger import logs
from broker.storage import keys
from tests.support.client import bearer
from tests.support.factories import make_org, make_token, make_user, raw_app, raw_grant, raw_installation
from tests.support.ledger import journal_records


@pytest.fixture
def world(store: Any, settings: Any) -> dict[str, Any]:
    alice = make_user(store, nickname="Alice-the-person")
    bob = make_user(store, nickname="Bob-the-member")
    mini = raw_app(store, developer_id="usr_dev1")
    gid = raw_grant(store, mini, alice, "openid profile", "user_id nickname avatar")
    person_token = make_token(
        store, settings, mini, kind="grant", subject=alice, grant_id=gid, scopes="openid profile"
    )
    acme = make_org(store, [alice, bob])
    org_app = raw_app(store, developer_id="usr_dev2", kind="org_app")
    iid = raw_installation(store, org_app, acme)
    org_token = make_token(
        store, settings, org_app, kind="installation", subject=acme, grant_id=iid, scopes="org.members.read"
    )
    return {"alice": alice, "bob": bob, "mini": mini, "org_app": org_app, "acme": acme,
            "person_token": person_token, "org_token": org_token}  # fmt: skip


def reads(world: dict[str, Any]) -> list[tuple[str, str, str, set[str]]]:
    """(path, token, client_id, the people it discloses)."""
    return [
        ("/v1/me", world["person_token"], world["mini"], {world["alice"]}),
        ("/oauth/userinfo", world["person_token"], world["mini"], {world["alice"]}),
        (
            f"/v1/orgs/{world['acme']}/members",
            world["org_token"],
            world["org_app"],
            {world["alice"], world["bob"]},
        ),
    ]


def test_every_disclosure_is_recorded_under_its_request_id(
    client: Any, store: Any, world: dict[str, Any]
) -> None:
    for path, token, client_id, people in reads(world):
        before = len(journal_records(store, client_id))
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 200, path
        new = journal_records(store, client_id)[before:]
        assert {r["person"] for r in new} == people, path
        assert {r["request_id"] for r in new} == {response.headers["X-Request-Id"]}, path
        assert all(r["fields"] for r in new)


def test_no_record_no_data(client: Any, store: Any, world: dict[str, Any]) -> None:
    """The journal cannot take a record (its key holds a value of another type): 503, nothing leaves."""
    for path, token, client_id, _ in reads(world):
        journals = [keys.journal(client_id, log) for log in logs.names(store)]
        saved = {journal: store.redis.xrange(journal) for journal in journals}
        for journal in journals:
            store.redis.delete(journal)
            store.redis.set(journal, "not a stream")  # XADD now fails inside the gate's script
        try:
            response = client.get(path, headers=bearer(token))
            body = response.get_data(as_text=True)
            assert response.status_code == 503, (path, body)
            assert response.get_json()["error"] == "temporarily_unavailable"
            assert response.headers["Retry-After"]
            assert "Alice-the-person" not in body and "Bob-the-member" not in body
        finally:
            for journal, entries in saved.items():
                store.redis.delete(journal)
                for _, fields in entries:
                    store.redis.xadd(journal, fields)
