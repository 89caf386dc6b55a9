"""Demo apps: seeded once, idempotent across restarts, secrets kept in the data dir (0600)."""

from __future__ import annotations

import json
import stat

import pytest

from broker import demo
from broker.apps import registry as apps
from broker.consent import installations
from broker.storage import keys
from tests.support.environment import make_settings
from tests.support.factories import make_org, make_user


@pytest.fixture
def settings(tmp_path, redis_server):
    """As `broker demo` runs: its apps' webhooks are on loopback, which the demo allows."""
    settings = demo.demo_settings(make_settings(tmp_path, redis_server.url))
    assert settings.webhook_allow_private
    return settings


def _creds(store) -> dict:
    alice = make_user(store, nickname="Alice")
    carol = make_user(store, nickname="Carol")
    acme = make_org(store, name="Acme")
    return {
        "users": {"alice": {"id": alice}, "carol": {"id": carol}},
        "orgs": {"acme": {"id": acme}},
        "apps": {},
    }


def test_seed_apps_creates_the_three_demo_apps(store, settings) -> None:
    creds = _creds(store)
    demo.seed_apps(store, settings, creds)
    assert set(creds["apps"]) == {"org_app", "mini_program", "other_mini_program"}
    org_app, mini, other = (creds["apps"][n] for n in ("org_app", "mini_program", "other_mini_program"))
    assert org_app["kind"] == "org_app" and org_app["client_secret"].startswith("brk_cs_")
    assert mini["kind"] == "mini_program" and "client_secret" not in mini
    assert mini["redirect_uris"] == ["http://127.0.0.1:8765/callback"]
    assert other["redirect_uris"] == ["http://127.0.0.1:8766/callback"]
    assert apps.verify_secret(store, settings, other["client_id"], other["client_secret"])
    assert apps.get_app(store, org_app["client_id"])["developer_id"] == creds["users"]["alice"]["id"]
    assert apps.get_app(store, other["client_id"])["developer_id"] == creds["users"]["carol"]["id"]
    inst = installations.get_installation(store, org_app["client_id"], creds["orgs"]["acme"]["id"])
    assert inst is not None and inst["enabled"] and inst["scopes"] == ["org.members.read"]
    assert inst["installed_by"] == creds["users"]["alice"]["id"]  # acme's admin decided
    # Team Roster's events go to the example's webhook; its signing secret is in the credentials.
    assert org_app["webhook_url"] == "http://127.0.0.1:8770/webhook"
    assert org_app["webhook_secret"] == apps.webhook_secret(store, settings, org_app["client_id"])
    assert apps.get_app(store, org_app["client_id"])["webhook_url"] == org_app["webhook_url"]
    path = settings.data_dir / "demo-apps.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_seed_apps_is_idempotent_and_recovers_lost_secrets(store, settings) -> None:
    creds = _creds(store)
    demo.seed_apps(store, settings, creds)
    first = json.loads(json.dumps(creds["apps"]))
    again = {**creds, "apps": {}}
    demo.seed_apps(store, settings, again)
    assert again["apps"] == first
    assert store.redis.zcard(keys.apps_all()) == 3
    (settings.data_dir / "demo-apps.json").unlink()
    store.redis.delete(keys.app(first["mini_program"]["client_id"]))
    third = {**creds, "apps": {}}
    demo.seed_apps(store, settings, third)
    assert third["apps"]["mini_program"]["client_id"] != first["mini_program"]["client_id"]
    secret = third["apps"]["org_app"]["client_secret"]
    assert apps.verify_secret(store, settings, third["apps"]["org_app"]["client_id"], secret)


def test_seed_without_directory_uses_a_stand_in_developer(store, settings) -> None:
    creds = demo.seed(store, settings)
    assert set(creds["apps"]) == {"org_app", "mini_program", "other_mini_program"}
    developer = apps.get_app(store, creds["apps"]["mini_program"]["client_id"])["developer_id"]
    assert store.redis.hget(keys.user(developer), "status") == "active"


def test_seed_directory_gives_acme_two_departments_once(store, settings) -> None:
    from broker.directory import departments

    creds: dict = {"orgs": {}, "users": {}}
    demo.seed_directory(store, settings, creds)
    acme = creds["orgs"]["acme"]["id"]
    listed = departments.listing(store, acme)
    assert [(d["name"], d["members"]) for d in listed] == [("Engineering", 1), ("Sales", 1)]
    assert departments.member_departments(store, acme, creds["users"]["bob"]["id"]) == [listed[1]["id"]]
    demo.seed_directory(store, settings, {"orgs": {}, "users": {}})  # a restart adds nothing
    assert len(departments.listing(store, acme)) == 2
