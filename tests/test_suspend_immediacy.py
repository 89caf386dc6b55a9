"""Operator suspend/restore through the platform API and the CLI: refused on the very next request,
no ledger record for the refused request, and announced in the app's outbox (DESIGN invariant 2)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from broker.storage import keys
from tests.support.apps import outbox_events
from tests.support.client import bearer
from tests.support.environment import ROOT, broker_env
from tests.support.factories import (
    make_installation,
    make_org,
    make_token,
    make_user,
    raw_app,
    raw_grant,
)
from tests.support.ledger import journal_records


def _person(store: Any, settings: Any) -> tuple[str, str]:
    uid = make_user(store, nickname="Alice")
    cid = raw_app(store, developer_id="usr_dev1")
    gid = raw_grant(store, cid, uid, "openid profile", "user_id nickname")
    return cid, make_token(
        store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
    )


def _org(store: Any, settings: Any) -> tuple[str, str, str]:
    oid = make_org(store, [make_user(store, nickname="m0")])
    cid = raw_app(store, kind="org_app", developer_id="usr_dev2")
    iid = make_installation(store, cid, oid)
    token = make_token(
        store, settings, cid, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    return cid, oid, token


def test_platform_api_suspend_is_refused_next_request_and_restore_works(client, store, settings) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    person_app, person_token = _person(store, settings)
    org_app, oid, org_token = _org(store, settings)
    assert client.get("/v1/me", headers=bearer(person_token)).status_code == 200
    assert client.get(f"/v1/orgs/{oid}/members", headers=bearer(org_token)).status_code == 200
    before = (len(journal_records(store, person_app)), len(journal_records(store, org_app)))

    for cid in (person_app, org_app):
        assert client.post(f"/internal/v1/apps/{cid}/suspend", headers=auth).status_code == 200
    assert client.get("/v1/me", headers=bearer(person_token)).status_code == 401
    assert client.get(f"/v1/orgs/{oid}/members", headers=bearer(org_token)).status_code == 401
    assert (len(journal_records(store, person_app)), len(journal_records(store, org_app))) == before

    for cid in (person_app, org_app):
        assert client.post(f"/internal/v1/apps/{cid}/restore", headers=auth).status_code == 200
    # Restoring revives no token (issue 13, item 6: the safer choice); new ones work.
    assert client.get("/v1/me", headers=bearer(person_token)).status_code == 401
    assert client.get(f"/v1/orgs/{oid}/members", headers=bearer(org_token)).status_code == 401
    uid = store.redis.smembers(keys.app_grants(person_app)).pop()
    fresh = make_token(
        store, settings, person_app, kind="grant", subject=uid,
        grant_id=store.redis.hget(keys.grant(person_app, uid), "id"), scopes="openid profile",
    )  # fmt: skip
    assert client.get("/v1/me", headers=bearer(fresh)).status_code == 200
    for cid in (person_app, org_app):
        types = [e["type"] for e in outbox_events(store, cid)]
        assert types[-2:] == ["app.suspended", "app.restored"]


def test_cli_suspend_is_refused_next_request_and_restore_works(
    tmp_path, client, store, settings, redis_server
) -> None:
    person_app, person_token = _person(store, settings)
    env = broker_env(tmp_path, BROKER_REDIS_URL=redis_server.url)
    cmd = [sys.executable, "-m", "broker", "apps"]

    def run(action: str) -> None:
        done = subprocess.run(
            [*cmd, action, person_app], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr

    assert client.get("/v1/me", headers=bearer(person_token)).status_code == 200
    before = len(journal_records(store, person_app))
    run("suspend")
    assert client.get("/v1/me", headers=bearer(person_token)).status_code == 401
    assert len(journal_records(store, person_app)) == before
    run("restore")
    assert client.get("/v1/me", headers=bearer(person_token)).status_code == 401  # not revived
    assert [e["type"] for e in outbox_events(store, person_app)][-2:] == ["app.suspended", "app.restored"]


def test_refresh_token_of_a_suspended_app_is_refused(flow, client, settings) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    body = flow["token"](flow["code_form"]()).get_json()
    assert client.post(f"/internal/v1/apps/{flow['cid']}/suspend", headers=auth).status_code == 200
    refused = flow["token"]({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    # A suspended client no longer authenticates at all, so the refresh stops before the grant check.
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "invalid_client"
    assert "suspended by the platform operator" in refused.get_json()["error_description"]
    # wrong credentials learn nothing about the app's state
    wrong = flow["client"].post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(flow["cid"], "brk_cs_wrong"),
    )
    assert wrong.status_code == 401 and "suspended" not in wrong.get_json()["error_description"]
    # restored, the old refresh token stays dead: restoring revives no token
    assert client.post(f"/internal/v1/apps/{flow['cid']}/restore", headers=auth).status_code == 200
    again = flow["token"]({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
