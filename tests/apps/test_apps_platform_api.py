"""Platform API for apps and installations (/internal/v1), and the `broker apps` CLI."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from broker.storage import keys
from tests.support.apps import mini_payload, org_payload, outbox_events
from tests.support.environment import ROOT, broker_env
from tests.support.factories import make_org, make_user


@pytest.fixture
def auth(settings: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.platform_api_key}"}


def test_requires_platform_key(client) -> None:
    response = client.get("/internal/v1/apps")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


def test_create_returns_secrets_once(client, store, auth) -> None:
    dev = make_user(store)
    response = client.post("/internal/v1/apps", json=org_payload(dev), headers=auth)
    assert response.status_code == 201
    body = response.get_json()
    cid = body["client_id"]
    assert body["client_secret"].startswith("brk_cs_")
    assert body["webhook_secret"].startswith("whsec_")
    assert response.headers["Location"] == f"/internal/v1/apps/{cid}"
    assert response.headers["Cache-Control"] == "no-store"
    again = client.get(f"/internal/v1/apps/{cid}", headers=auth)
    assert again.status_code == 200
    assert "client_secret" not in again.get_json() and "webhook_secret" not in again.get_json()
    assert again.get_json()["status"] == "active"
    listed = client.get("/internal/v1/apps", headers=auth).get_json()["apps"]
    assert [a["client_id"] for a in listed] == [cid]


def test_create_lists_every_bad_field(client, store, auth) -> None:
    dev = make_user(store)
    payload = {
        **mini_payload(dev),
        "kind": 7,
        "privacy_policy_url": "http://x.example/p",
        "redirect_uris": ["https://a.example/cb#x"],
        "colour": "red",
    }
    response = client.post("/internal/v1/apps", json=payload, headers=auth)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert set(body["errors"]) == {"kind", "privacy_policy_url", "redirect_uris", "colour"}
    assert store.redis.zcard(keys.apps_all()) == 0


def test_unknown_scope_answers_invalid_scope(client, store, auth) -> None:
    dev = make_user(store)
    response = client.post(
        "/internal/v1/apps", json=mini_payload(dev, scopes=["openid", "mobile"]), headers=auth
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"
    assert "scopes" in response.get_json()["errors"]


def test_wrong_content_type_is_415(client, auth) -> None:
    response = client.post("/internal/v1/apps", data="x", headers=auth)
    assert response.status_code == 415


def test_patch_rotate_suspend_restore_delete(client, store, auth) -> None:
    dev = make_user(store)
    cid = client.post("/internal/v1/apps", json=org_payload(dev), headers=auth).get_json()["client_id"]
    patched = client.patch(f"/internal/v1/apps/{cid}", json={"name": "Roster Pro"}, headers=auth)
    assert patched.status_code == 200 and patched.get_json()["name"] == "Roster Pro"
    bad = client.patch(
        f"/internal/v1/apps/{cid}", json={"kind": "mini_program", "webhook_url": "ftp://x"}, headers=auth
    )
    assert bad.status_code == 400 and set(bad.get_json()["errors"]) == {"kind", "webhook_url"}
    rotated = client.post(f"/internal/v1/apps/{cid}/secret", headers=auth)
    assert rotated.status_code == 200 and rotated.get_json()["client_secret"].startswith("brk_cs_")
    assert client.post(f"/internal/v1/apps/{cid}/webhook-secret", headers=auth).status_code == 200
    assert client.post(f"/internal/v1/apps/{cid}/suspend", headers=auth).get_json()["status"] == "suspended"
    assert client.post(f"/internal/v1/apps/{cid}/suspend", headers=auth).status_code == 409
    assert client.post(f"/internal/v1/apps/{cid}/restore", headers=auth).get_json()["status"] == "active"
    assert client.delete(f"/internal/v1/apps/{cid}", headers=auth).status_code == 204
    assert client.get(f"/internal/v1/apps/{cid}", headers=auth).status_code == 404
    assert client.post(f"/internal/v1/apps/{cid}/suspend", headers=auth).status_code == 404


def test_public_client_secret_rotation_conflicts(client, store, auth) -> None:
    dev = make_user(store)
    cid = client.post("/internal/v1/apps", json=mini_payload(dev), headers=auth).get_json()["client_id"]
    assert client.post(f"/internal/v1/apps/{cid}/secret", headers=auth).status_code == 409


def test_installation_lifecycle_over_api(client, store, auth) -> None:
    dev = make_user(store)
    org = make_org(store)
    cid = client.post("/internal/v1/apps", json=org_payload(dev), headers=auth).get_json()["client_id"]
    base = f"/internal/v1/orgs/{org}/installations"
    created = client.post(base, json={"client_id": cid}, headers=auth)
    assert created.status_code == 201
    assert created.get_json()["scopes"] == ["org.members.read"] and created.get_json()["enabled"] is True
    assert client.post(base, json={"client_id": cid}, headers=auth).status_code == 409
    assert [i["client_id"] for i in client.get(base, headers=auth).get_json()["installations"]] == [cid]
    off = client.patch(f"{base}/{cid}", json={"enabled": False}, headers=auth)
    assert off.status_code == 200 and off.get_json()["enabled"] is False
    both = client.patch(f"{base}/{cid}", json={"enabled": True, "scopes": ["org.members.read"]}, headers=auth)
    assert both.status_code == 400
    wrong = client.patch(f"{base}/{cid}", json={"scopes": ["profile"]}, headers=auth)
    assert wrong.status_code == 400 and "scopes" in wrong.get_json()["errors"]
    assert client.patch(f"{base}/{cid}", json={"enabled": True}, headers=auth).get_json()["enabled"] is True
    assert client.delete(f"{base}/{cid}", headers=auth).status_code == 204
    assert client.get(f"{base}/{cid}", headers=auth).status_code == 404
    assert [e["type"] for e in outbox_events(store, cid)] == [
        "installation.installed",
        "installation.disabled",
        "installation.enabled",
        "installation.removed",
    ]


def test_install_unknown_org_or_mini_program(client, store, auth) -> None:
    dev = make_user(store)
    org = make_org(store)
    org_app = client.post("/internal/v1/apps", json=org_payload(dev), headers=auth).get_json()["client_id"]
    mini = client.post("/internal/v1/apps", json=mini_payload(dev), headers=auth).get_json()["client_id"]
    missing = client.post(
        "/internal/v1/orgs/org_0000000000000000/installations", json={"client_id": org_app}, headers=auth
    )
    assert missing.status_code == 404
    assert (
        client.post(
            f"/internal/v1/orgs/{org}/installations", json={"client_id": mini}, headers=auth
        ).status_code
        == 409
    )
    unknown = client.post(
        f"/internal/v1/orgs/{org}/installations", json={"client_id": "app_0000000000000000"}, headers=auth
    )
    assert unknown.status_code == 404
    assert store.redis.smembers(keys.org_installations(org)) == set()


def test_cli_suspend_and_restore(tmp_path, store, redis_server, settings) -> None:
    dev = make_user(store)
    from broker.apps import registry as apps
    from broker.core import catalog

    record, _, _ = apps.register_app(store, settings, catalog.load(settings.scopes_dir), mini_payload(dev))
    env = broker_env(tmp_path, BROKER_REDIS_URL=redis_server.url)
    cmd = [sys.executable, "-m", "broker", "apps"]
    done = subprocess.run(
        [*cmd, "suspend", record["client_id"]], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert store.redis.hget(keys.app(record["client_id"]), "status") == "suspended"
    again = subprocess.run(
        [*cmd, "suspend", record["client_id"]], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 2 and "already suspended" in again.stderr
    done = subprocess.run(
        [*cmd, "restore", record["client_id"]], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "active" in done.stdout
    assert store.redis.hget(keys.app(record["client_id"]), "status") == "active"


def test_unknown_developer_is_named_with_the_other_bad_fields(client, store, auth) -> None:
    payload = {**mini_payload("usr_0000000000000000"), "contact": ""}
    response = client.post("/internal/v1/apps", json=payload, headers=auth)
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == {"developer_id", "contact"}


def test_list_apps_of_one_developer(client, store, auth) -> None:
    dev, other = make_user(store), make_user(store, nickname="Other")
    mine = client.post("/internal/v1/apps", json=mini_payload(dev), headers=auth).get_json()["client_id"]
    client.post("/internal/v1/apps", json=mini_payload(other), headers=auth)
    listed = client.get(f"/internal/v1/apps?developer_id={dev}", headers=auth).get_json()["apps"]
    assert [a["client_id"] for a in listed] == [mine]
    assert client.get("/internal/v1/apps?developer_id=bob", headers=auth).status_code == 400


def test_cli_reviews_org_apps(tmp_path, store, redis_server, settings) -> None:
    """``broker apps review`` lists the org apps waiting for the operator, then approves or rejects one."""
    from broker.apps import registry as apps
    from broker.core import catalog

    dev = make_user(store)
    record, _, _ = apps.register_app(
        store, settings, catalog.load(settings.scopes_dir), org_payload(dev, name="Shifts"), needs_review=True
    )
    cid = record["client_id"]
    env = broker_env(tmp_path, BROKER_REDIS_URL=redis_server.url)

    def review(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "broker", "apps", "review", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = review()
    assert listed.returncode == 0 and cid in listed.stdout and "Shifts" in listed.stdout
    no_reason = review(cid, "reject")
    assert no_reason.returncode == 2 and "reason" in no_reason.stderr
    assert store.redis.hget(keys.app(cid), "review") == "pending"  # nothing changed
    assert review(cid).returncode == 2
    done = review(cid, "approve")
    assert done.returncode == 0 and "approved" in done.stdout
    assert store.redis.hget(keys.app(cid), "review") == "approved"
    assert "no org app is waiting" in review().stdout
