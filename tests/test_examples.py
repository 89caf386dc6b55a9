"""The examples, run as a developer would run them, against a real `broker demo` on loopback."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from broker.storage.embedded import free_port
from tests.broker_process import start_example
from tests.conftest import ROOT
from tests.test_e2e_demo import demo, sign_in, sign_in_and_consent  # noqa: F401  (module fixture)

pytestmark = pytest.mark.slow


@pytest.fixture
def creds_file(demo: dict[str, Any], tmp_path: Path) -> Path:  # noqa: F811
    import json

    path = tmp_path / "creds.json"
    path.write_text(json.dumps(demo["creds"]))
    return path


def test_org_app_lists_members_then_shows_switched_off_and_verified_events(
    demo: dict[str, Any],  # noqa: F811  (the shared module fixture)
    creds_file: Path,
    tmp_path: Path,
) -> None:
    base, creds = demo["base"], demo["creds"]
    api = {"Authorization": f"Bearer {creds['platform_api_key']}"}
    cid, acme = creds["apps"]["org_app"]["client_id"], creds["orgs"]["acme"]["id"]
    port = free_port()
    hook = requests.patch(
        f"{base}/internal/v1/apps/{cid}",
        json={"webhook_url": f"http://127.0.0.1:{port}/webhook"},
        headers=api,
    )
    assert hook.status_code == 200, hook.text
    secret = requests.post(f"{base}/internal/v1/apps/{cid}/webhook-secret", headers=api)
    assert secret.status_code == 200
    proc = start_example(
        [str(ROOT / "examples/org_app/app.py"), "--credentials", str(creds_file), "--port", str(port)],
        tmp_path / "org_app.log",
        {"WEBHOOK_SECRET": secret.json()["webhook_secret"]},
        port,
    )
    try:
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and 'data-state="ok"' in page.text, page.text
        assert "> Alice</li>" in page.text and "2 members" in page.text
        assert "> Bob</li>" in page.text
        bad = requests.post(
            f"http://127.0.0.1:{port}/webhook",
            data=b'{"id":"evt_x","type":"x"}',
            headers={"Broker-Signature": "t=1,v1=00"},
        )
        assert bad.status_code == 400
        body = b'{"id":"evt_test","type":"test.signed","time":0,"data":{}}'
        key = secret.json()["webhook_secret"].encode()

        def signed(t: int) -> dict[str, str]:
            mac = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
            return {"Broker-Signature": f"t={t},v1={mac}", "Content-Type": "application/json"}

        stale = requests.post(
            f"http://127.0.0.1:{port}/webhook", data=body, headers=signed(int(time.time()) - 3600)
        )
        assert stale.status_code == 400
        fresh = requests.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=signed(int(time.time())))
        assert fresh.status_code == 204

        off = requests.patch(
            f"{base}/internal/v1/orgs/{acme}/installations/{cid}", json={"enabled": False}, headers=api
        )
        assert off.status_code == 200, off.text
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200
        assert "This organization has switched the app off" in page.text

        env = {**demo["env"], "BROKER_REDIS_URL": f"unix://{demo['data'] / 'redis' / 'redis.sock'}"}
        deadline = time.monotonic() + 30
        types: set[str] = set()
        while time.monotonic() < deadline and "installation.disabled" not in types:
            subprocess.run(
                [sys.executable, "-m", "broker", "worker", "--once"], env=env, timeout=60, capture_output=True
            )
            events = requests.get(f"http://127.0.0.1:{port}/events?format=json", timeout=10).json()["events"]
            types = {e["type"] for e in events if e["verified"]}
            time.sleep(0.2)
        assert "installation.disabled" in types
    finally:
        proc.terminate()
        proc.wait(10)
        requests.patch(
            f"{base}/internal/v1/orgs/{acme}/installations/{cid}", json={"enabled": True}, headers=api
        )


def test_mini_program_signs_bob_in_then_sees_the_withdrawal(
    demo: dict[str, Any],  # noqa: F811  (the shared module fixture)
    creds_file: Path,
    tmp_path: Path,
) -> None:
    base, creds = demo["base"], demo["creds"]
    proc = start_example(
        [str(ROOT / "examples/mini_program/app.py"), "--credentials", str(creds_file), "--port", "8765"],
        tmp_path / "mini.log",
        port=8765,
    )
    app_url = "http://127.0.0.1:8765"
    try:
        browser = requests.Session()
        final = sign_in_and_consent(
            browser, f"{app_url}/login", f"{app_url}/callback", creds["users"]["bob"], "bob"
        )
        shown = browser.get(final, timeout=30)
        assert shown.status_code == 200, shown.text
        assert 'data-state="signed-in"' in shown.text and 'id="nickname">' in shown.text
        again = browser.get(f"{app_url}/", timeout=30)
        assert 'data-state="signed-in"' in again.text

        bob = sign_in(base, creds["users"]["bob"], "bob")
        csrf = bob.get(f"{base}/privacy/v1/csrf-token", timeout=10).json()
        token = csrf.get("csrf_token") or next(iter(csrf.values()))
        cid = creds["apps"]["mini_program"]["client_id"]
        revoked = bob.post(f"{base}/privacy/v1/apps/{cid}/revoke", headers={"X-CSRFToken": token}, timeout=10)
        assert revoked.status_code in (200, 204), revoked.text

        after = browser.get(f"{app_url}/", timeout=30)
        assert after.status_code == 200
        assert "Access was withdrawn, sign in again." in after.text
    finally:
        proc.terminate()
        proc.wait(10)

    deadline = time.monotonic() + 30
    wanted = {creds["apps"]["mini_program"]["client_id"], creds["apps"]["org_app"]["client_id"]}
    while True:
        records = bob.get(f"{base}/privacy/v1/disclosures?limit=100", timeout=10).json()["records"]
        seen = {r["record"]["app"] for r in records if r.get("inclusion_proof") is not None}
        if wanted <= seen or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert wanted <= seen
