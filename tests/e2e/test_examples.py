"""The examples, run as a developer would run them, against a real `broker demo` on loopback."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from standardwebhooks import Webhook

from tests.support.broker_process import start_example
from tests.support.demo import sign_in_and_consent
from tests.support.environment import ROOT
from tests.support.htmlforms import form_with
from tests.support.signin import http_sign_in

pytestmark = pytest.mark.slow

ORG_APP_PORT = 8770  # examples/org_app's default port, where the demo sends Team Roster's events


def admin_step(admin: requests.Session, page_url: str, action_part: str) -> requests.Response:
    """Open an admin console page and submit its form as the browser would (CSRF token included)."""
    page = admin.get(page_url, timeout=10)
    assert page.status_code == 200, page.text[:500]
    form = form_with(page.text, page.url, action_part=action_part)
    done = admin.post(form.action, data=form.values(), allow_redirects=False, timeout=10)
    assert done.status_code == 303, done.text[:500]
    return page


def example_page(port: int) -> str:
    page = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
    assert page.status_code == 200, page.text
    return page.text


def test_org_app_walkthrough_admin_adds_switches_off_and_on_with_verified_events(
    demo: dict[str, Any],
    tmp_path: Path,
) -> None:
    """README "Walk-through", steps 1-2: the command the README gives, alice's clicks in her console."""
    base, creds = demo["base"], demo["creds"]
    cid, acme = creds["apps"]["org_app"]["client_id"], creds["orgs"]["acme"]["id"]
    # The demo registered Team Roster with the example's webhook URL and default port.
    assert creds["apps"]["org_app"]["webhook_url"] == f"http://127.0.0.1:{ORG_APP_PORT}/webhook"
    credentials = demo["data"] / "demo-credentials.json"
    assert json.loads(credentials.read_text())["apps"]["org_app"]["client_id"] == cid
    proc = start_example(
        [str(ROOT / "examples/org_app/app.py"), "--credentials", str(credentials)],
        tmp_path / "org_app.log",
        port=ORG_APP_PORT,
    )
    app_page = f"/admin/orgs/{acme}/apps/{cid}"
    alice = http_sign_in(base, creds["users"]["alice"], "alice")
    try:
        page = example_page(ORG_APP_PORT)
        assert 'data-state="ok"' in page and "2 members" in page, page
        assert "> Alice</li>" in page and "> Bob</li>" in page

        # alice removes Team Roster and adds it again from the App Center, choosing its scope.
        preview = admin_step(alice, f"{base}{app_page}/remove", "/remove")
        assert 'id="impact-members">2<' in preview.text
        assert 'data-state="switched-off"' in example_page(ORG_APP_PORT)
        center = alice.get(f"{base}/admin/orgs/{acme}/app-center", timeout=10)
        assert f'href="{app_page}/install"' in center.text
        adding = admin_step(alice, f"{base}{app_page}/install", "/install")
        assert 'data-field="nickname"' in adding.text and 'data-field="avatar"' in adding.text
        assert 'data-state="ok"' in example_page(ORG_APP_PORT)

        # Switched off: the example shows it; switched on: it lists the members again.
        admin_step(alice, f"{base}{app_page}/disable", "/disable")
        assert "This organization has switched the app off" in example_page(ORG_APP_PORT)
        admin_step(alice, f"{base}{app_page}/enable", "/enable")
        assert 'data-state="ok"' in example_page(ORG_APP_PORT)

        # The demo delivers the signed events itself; the example verified each one.
        expected = [
            "installation.installed",  # the demo added it for alice at start
            "installation.removed",
            "installation.installed",
            "installation.disabled",
            "installation.enabled",
        ]
        deadline = time.monotonic() + 60
        while True:
            events = requests.get(f"http://127.0.0.1:{ORG_APP_PORT}/events?format=json", timeout=10).json()[
                "events"
            ]
            types = [e["type"] for e in reversed(events) if e["verified"]]
            if types == expected or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert types == expected

        # The example refuses what it cannot verify.
        hook = f"http://127.0.0.1:{ORG_APP_PORT}/webhook"
        bad = requests.post(
            hook,
            data=b'{"id":"evt_x","type":"x"}',
            headers={"webhook-id": "evt_x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
        )
        assert bad.status_code == 400
        body = b'{"id":"evt_test","type":"test.signed","time":0,"data":{}}'
        secret = creds["apps"]["org_app"]["webhook_secret"]
        assert secret.startswith("whsec_")

        def signed(t: int) -> dict[str, str]:
            """Signed by a Standard Webhooks library, not by the broker's own code."""
            signature = Webhook(secret).sign("evt_test", datetime.fromtimestamp(t, tz=UTC), body.decode())
            return {
                "webhook-id": "evt_test",
                "webhook-timestamp": str(t),
                "webhook-signature": signature,
                "Content-Type": "application/json",
            }

        assert requests.post(hook, data=body, headers=signed(int(time.time()) - 3600)).status_code == 400
        assert requests.post(hook, data=body, headers=signed(int(time.time()))).status_code == 204
    finally:
        proc.terminate()
        proc.wait(10)


def test_mini_program_signs_bob_in_then_sees_the_withdrawal(
    demo: dict[str, Any],
    tmp_path: Path,
) -> None:
    """README "Walk-through", steps 3-4: the example's own command, bob signs in and withdraws it."""
    base, creds = demo["base"], demo["creds"]
    credentials = demo["data"] / "demo-credentials.json"
    proc = start_example(
        [str(ROOT / "examples/mini_program/app.py"), "--credentials", str(credentials)],
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

        bob = http_sign_in(base, creds["users"]["bob"], "bob")
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
