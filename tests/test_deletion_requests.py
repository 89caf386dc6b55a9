"""Withdrawing consent tells the app (issue 14, items 4 and 5): ``grant.updated`` for every change of a
grant's scopes or fields, and a ``deletion.requested`` event naming the pairwise id and the fields,
which the app acknowledges; the person's privacy center shows when it was sent and acknowledged."""

from __future__ import annotations

from typing import Any

from broker.core.pairwise import pairwise_id
from tests.support.apps import outbox_events
from tests.support.factories import make_app, make_grant, make_user
from tests.support.signin import session_sign_in


def _csrf(client: Any) -> dict[str, str]:
    return {"X-CSRFToken": client.get("/privacy/v1/csrf-token").get_json()["csrf_token"]}


def test_withdrawing_a_scope_sends_grant_updated_and_a_deletion_request_the_app_acknowledges(
    client, store, settings
) -> None:
    cid, secret = make_app(store, settings, name="Pocket Notes")
    other, other_secret = make_app(store, settings, name="Other")
    alice = make_user(store, username="alice")
    make_grant(store, settings, cid, alice, "openid profile", "user_id nickname avatar")
    session_sign_in(client, alice)
    done = client.post(f"/privacy/v1/apps/{cid}/scopes/profile/revoke", headers=_csrf(client))
    assert done.status_code == 200 and done.get_json()["grant"]["scopes"] == ["openid"]

    seen_as = pairwise_id(settings.pairwise_key, cid, alice)
    events = {e["type"]: e["data"] for e in outbox_events(store, cid)}
    assert events["grant.updated"] == {"user_id": seen_as, "scopes": ["openid"], "fields": ["user_id"]}
    request = events["deletion.requested"]
    assert request["user_id"] == seen_as and request["fields"] == ["avatar", "nickname"]
    assert request["reason"] == "scope_withdrawn" and request["request_id"].startswith("del_")
    assert alice not in str(events)  # the internal id never reaches the app

    listed = client.get("/privacy/v1/deletion-requests").get_json()["deletion_requests"]
    assert [(r["id"], r["acked_at"]) for r in listed] == [(request["request_id"], None)]
    page = client.get("/privacy").get_data(as_text=True)
    assert f'data-request-id="{request["request_id"]}"' in page and "not yet" in page

    url = f"/v1/deletion-requests/{request['request_id']}/ack"
    assert client.post(url).status_code == 401
    wrong = client.post(url, auth=(cid, "brk_cs_wrong"))
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert client.post(url, auth=(other, other_secret)).status_code == 404  # not the other app's
    acked = client.post(url, auth=(cid, secret))
    assert acked.status_code == 200 and acked.get_json()["acked_at"] is not None
    again = client.post(url, auth=(cid, secret))
    assert again.get_json()["acked_at"] == acked.get_json()["acked_at"]  # idempotent
    assert client.post("/v1/deletion-requests/del_nope/ack", auth=(cid, secret)).status_code == 404
    listed = client.get("/privacy/v1/deletion-requests").get_json()["deletion_requests"]
    assert listed[0]["acked_at"] == acked.get_json()["acked_at"]


def test_removing_an_app_asks_it_to_delete_everything_it_received(client, store, settings) -> None:
    cid, _ = make_app(store, settings)
    alice = make_user(store, username="alice")
    make_grant(store, settings, cid, alice, "openid profile", "user_id nickname avatar")
    session_sign_in(client, alice)
    assert client.post(f"/privacy/v1/apps/{cid}/revoke", headers=_csrf(client)).status_code == 200
    request = next(e["data"] for e in outbox_events(store, cid) if e["type"] == "deletion.requested")
    assert request["reason"] == "grant_revoked" and request["fields"] == ["avatar", "nickname", "user_id"]
