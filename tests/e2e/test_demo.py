"""``broker demo``: a real server with the demo directory, a credentials file, and a working login."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from tests.support.broker_process import Broker

pytestmark = pytest.mark.slow

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def demo(tmp_path: Path, creds: Path) -> Broker:
    broker = Broker(tmp_path)
    broker.args = ("demo", "--port", str(broker.port), "--credentials-out", str(creds))
    del broker.env["BROKER_ISSUER"]  # the demo's issuer follows --port
    return broker


def test_demo_seeds_directory_and_alice_can_sign_in(tmp_path: Path, brokers: list[Broker]) -> None:
    creds_path = tmp_path / "creds.json"
    broker = demo(tmp_path, creds_path)
    brokers.append(broker.start())
    creds = json.loads(creds_path.read_text())
    assert creds_path.stat().st_mode & 0o777 == 0o600
    assert creds["issuer"] == broker.url
    assert set(creds) >= {"issuer", "platform_api_key", "users", "orgs", "apps"}
    assert set(creds["users"]) >= {"alice", "bob", "carol", "dave"}
    assert set(creds["orgs"]) >= {"acme", "globex"}
    for user in creds["users"].values():
        assert re.fullmatch(r"usr_[0-9a-f]{16}", user["id"]) and len(user["password"]) >= 12
    assert "alice" in broker.output() and creds["users"]["alice"]["password"] in broker.output()
    # The same document always lands in the data directory, where the examples read it.
    in_data_dir = tmp_path / "data" / "demo-credentials.json"
    assert json.loads(in_data_dir.read_text()) == creds
    assert in_data_dir.stat().st_mode & 0o777 == 0o600
    assert str(in_data_dir) in broker.output()  # the banner says where it is

    # Membership roles as DESIGN's contract says.
    api = {"Authorization": f"Bearer {creds['platform_api_key']}"}
    acme = creds["orgs"]["acme"]["id"]
    alice = creds["users"]["alice"]["id"]
    role = requests.get(f"{broker.url}/internal/v1/orgs/{acme}/members/{alice}", headers=api, timeout=5)
    assert role.status_code == 200 and role.json()["role"] == "admin"
    dave_orgs = requests.get(
        f"{broker.url}/internal/v1/users/{creds['users']['dave']['id']}/orgs", headers=api, timeout=5
    )
    assert dave_orgs.json() == {"orgs": []}

    # Sign in as alice through the real form.
    web = requests.Session()
    page = web.get(f"{broker.url}/login", timeout=5)
    token = CSRF_RE.search(page.text)
    assert page.status_code == 200 and token
    resp = web.post(
        f"{broker.url}/login",
        timeout=5,
        allow_redirects=False,
        data={
            "csrf_token": token.group(1),
            "username": "alice",
            "password": creds["users"]["alice"]["password"],
            "next": "/",
        },
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/"
    home = web.get(f"{broker.url}/", timeout=5)
    assert 'id="signed-in-as">Alice<' in home.text

    # A restart finds the same people with the same passwords.
    broker.stop()
    again = demo(tmp_path, creds_path)
    brokers.append(again.start())
    assert json.loads(creds_path.read_text())["users"] == creds["users"]
    assert json.loads(creds_path.read_text())["orgs"] == creds["orgs"]
