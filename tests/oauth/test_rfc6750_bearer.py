"""RFC 6750 bearer token usage on the data API: 401 with ``WWW-Authenticate: Bearer`` for missing or
bad credentials, 403 ``insufficient_scope`` naming the scope, and no disclosure recorded."""

from __future__ import annotations

import pytest

from tests.support.client import bearer
from tests.support.factories import make_token, make_user, raw_app, raw_grant
from tests.support.ledger import journal_records


def test_missing_scope_is_insufficient_scope_with_where_to_grant(client, store, settings) -> None:
    uid = make_user(store)
    cid = raw_app(store)
    gid = raw_grant(store, cid, uid, "profile", "nickname avatar")
    token = make_token(store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="profile")
    response = client.get("/v1/me", headers=bearer(token))
    assert response.status_code == 403
    body = response.get_json()
    assert body["error"] == "insufficient_scope"
    assert body["scope"] == "openid"
    assert body["grant_url"] == f"{settings.issuer}/privacy/apps/{cid}/scopes/add?scope=openid"
    assert (
        response.headers["WWW-Authenticate"]
        == 'Bearer realm="broker", error="insufficient_scope", scope="openid"'
    )
    assert journal_records(store, cid) == []


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"Authorization": "Basic abc"}, "", 401),
        ({"Authorization": "Bearer not-a-broker-token"}, "", 401),
        ({"Authorization": "Bearer brk_at_app_0000.nope"}, "", 401),
        ({}, "?access_token=brk_at_app_x.y", 401),
    ],
)
def test_bad_credentials(client, headers, query, status) -> None:
    response = client.get("/v1/me" + query, headers=headers)
    assert response.status_code == status
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="broker"')
