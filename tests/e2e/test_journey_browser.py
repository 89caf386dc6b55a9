"""The whole story in a real browser, with nothing but the web pages: issue 5's "done when".

A real `broker serve` (granian) and `broker worker` on loopback; the two example apps as the
developer would run them; headless Chromium for every person, each signed in through /login:

1. Devon, a developer, registers an App Center app (Team Roster) and a mini-program (Pocket Notes)
   in the developer console, each with a webhook URL, and copies the secrets the page shows once.
2. Olivia, who owns the organization Acme, adds Team Roster in the App Center choosing its scope and
   seeing which member fields it will receive; switches it off and on again after reading each
   impact preview; at the end removes it.
3. Pat, a member of Acme, signs in to Pocket Notes (consent), then in the privacy center sees both
   apps (Team Roster read-only, with who decided it), both apps' disclosures with verified proofs,
   and withdraws Pocket Notes.
4. Each change is refused on the very next request, and each is announced with a signed event: Team
   Roster's own /webhook verifies its events; Pocket Notes' events are checked with the same example
   verifier code.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from broker.storage.embedded import free_port
from tests.support.broker_process import Broker, kill_all, start_example
from tests.support.browser import chromium, fill_login_form, new_page, sign_in, text_of
from tests.support.environment import ROOT
from tests.support.webhook_receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORDS = {"devon": "devon-password", "olivia": "olivia-password", "pat": "pat-password"}


def example_verifier() -> Callable[..., Any]:
    """The event check of examples/org_app/app.py (Standard Webhooks), loaded from the example's file."""
    spec = importlib.util.spec_from_file_location("example_org_app", ROOT / "examples/org_app/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verify: Callable[..., Any] = module.verify_event
    return verify


def eventually(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll ``check`` until it returns something truthy (the worker and sequencer run on their own)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def platform(tmp_path: Path, redis_server: Any, store: Any) -> Iterator[dict[str, Any]]:
    """broker serve + broker worker on the test's own redis-server, and Acme's people."""
    started: list[Broker] = []
    broker = Broker(
        tmp_path,
        BROKER_REDIS_URL=redis_server.url,
        BROKER_CHECKPOINT_SECONDS="1",
        BROKER_WEBHOOK_ALLOW_PRIVATE="true",  # the apps' webhook receivers are on loopback
    )
    started.append(broker.start())
    # The worker shares the server's configuration (its keys) and polls often.
    worker_env = {**broker.env, "BROKER_WEBHOOK_POLL_MS": "100", "BROKER_WEBHOOK_BACKOFF_BASE_MS": "50"}
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "broker", "worker"], env=worker_env, cwd=ROOT, stdout=log, stderr=log
        )
    try:
        api = broker.headers()
        people = {}
        for username, nickname in (("devon", "Devon"), ("olivia", "Olivia"), ("pat", "Pat")):
            made = requests.post(
                f"{broker.url}/internal/v1/users",
                json={"username": username, "password": PASSWORDS[username], "nickname": nickname},
                headers=api,
                timeout=10,
            )
            assert made.status_code == 201, made.text
            people[username] = made.json()["id"]
        org = requests.post(f"{broker.url}/internal/v1/orgs", json={"name": "Acme"}, headers=api, timeout=10)
        assert org.status_code == 201, org.text
        oid = org.json()["id"]
        for username, role in (("olivia", "owner"), ("pat", "member")):
            member = requests.put(
                f"{broker.url}/internal/v1/orgs/{oid}/members/{people[username]}",
                json={"role": role},
                headers=api,
                timeout=10,
            )
            assert member.status_code == 201, member.text
        yield {"broker": broker, "worker": worker, "oid": oid, "people": people}
    finally:
        worker.kill()
        worker.wait(10)
        kill_all(started)


def register(page: Any, base: str, kind: str, client_type: str, name: str, **values: str) -> dict[str, str]:
    """Fill the developer console's registration form; return the id and the secrets shown once."""
    page.goto(f"{base}/developer/")
    page.get_by_role("link", name="Register an app").click()
    page.locator(f'input[name="kind"][value="{kind}"]').check()
    page.locator(f'input[name="client_type"][value="{client_type}"]').check()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Description").fill(values["description"])
    page.get_by_role("textbox", name="Contact").fill("devon@example.com")
    page.get_by_label("Privacy policy URL").fill(f"https://{name.lower().replace(' ', '-')}.example/privacy")
    page.get_by_label("Redirect URIs").fill(values.get("redirect_uri", ""))
    for scope in values["scopes"].split():
        page.locator(f'input[name="scopes"][value="{scope}"]').check()
    page.get_by_label("Webhook URL").fill(values["webhook_url"])
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(lambda url: "/developer/apps/app_" in url)
    shown = {"client_id": page.url.rsplit("/", 1)[1], "webhook_secret": text_of(page, "#webhook-secret")}
    if client_type == "confidential":
        shown["client_secret"] = text_of(page, "#client-secret")
    page.reload()  # shown once: gone on the next visit
    assert page.locator("#webhook-secret").count() == 0 and page.locator("#client-secret").count() == 0
    return shown


def org_token(base: str, app: dict[str, str], oid: str) -> requests.Response:
    return requests.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials", "org_id": oid},
        auth=(app["client_id"], app["client_secret"]),
        timeout=10,
    )


def members(base: str, oid: str, token: str) -> requests.Response:
    return requests.get(
        f"{base}/v1/orgs/{oid}/members", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def switch(page: Any, base: str, oid: str, client_id: str, link: str, button: str) -> dict[str, Any]:
    """From the app's admin page: follow the switch link, read the impact preview, confirm."""
    page.goto(f"{base}/admin/orgs/{oid}/apps/{client_id}")
    page.get_by_role("link", name=link).click()
    preview = {
        "members": int(text_of(page, "#impact-members")),
        "fields": sorted(
            page.locator("li.impact-field").evaluate_all("els => els.map(e => e.dataset.field)")
        ),
        "text": text_of(page, "section.impact"),
    }
    page.get_by_role("button", name=button).click()
    page.wait_for_load_state()
    return preview


def field_names(items: Any) -> list[str]:
    """The sorted data-field names of the list items a locator finds."""
    return sorted(items.evaluate_all("els => els.map(e => e.dataset.field)"))


def example_events(port: int) -> list[str]:
    body = requests.get(f"http://127.0.0.1:{port}/events?format=json", timeout=10).json()
    assert all(e["verified"] for e in body["events"])
    return [e["type"] for e in reversed(body["events"])]  # the example lists the newest first


def example_state(port: int) -> str:
    page = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
    assert page.status_code == 200, page.text
    return page.text.split('data-state="', 1)[1].split('"', 1)[0]


def test_developer_admin_and_person_in_a_browser_with_signed_events(
    platform: dict[str, Any], tmp_path: Path
) -> None:
    base, oid, people = platform["broker"].url, platform["oid"], platform["people"]
    roster_port, notes_port = free_port(), free_port()
    notes_hooks = Receiver()
    verify = example_verifier()
    examples: list[Any] = []
    try:
        with chromium() as browser:
            # 1. The developer registers both apps; the secrets are on the page once.
            devon = new_page(browser)
            sign_in(devon, base, "devon", PASSWORDS["devon"], "/developer/")
            roster = register(
                devon,
                base,
                "org_app",
                "confidential",
                "Team Roster",
                description="Shows your team's roster",
                scopes="org.members.read",
                webhook_url=f"http://127.0.0.1:{roster_port}/webhook",
            )
            notes = register(
                devon,
                base,
                "mini_program",
                "public",
                "Pocket Notes",
                description="Notes in your pocket",
                redirect_uri=f"http://127.0.0.1:{notes_port}/callback",
                scopes="openid profile",
                webhook_url=notes_hooks.url,
            )
            devon.goto(f"{base}/developer/")
            for name in ("Team Roster", "Pocket Notes"):
                assert devon.get_by_role("link", name=name).count() == 1
            # The operator reviews the App Center app before any organization can add it.
            reviewed = requests.post(
                f"{base}/internal/v1/apps/{roster['client_id']}/review",
                json={"decision": "approve"},
                headers=platform["broker"].headers(),
                timeout=10,
            )
            assert reviewed.status_code == 200 and reviewed.json()["review"] == "approved"

            # The developer runs the example apps with what the console showed.
            common = {"ISSUER": base, "PYTHONPATH": str(ROOT)}
            examples.append(
                start_example(
                    [str(ROOT / "examples/org_app/app.py"), "--port", str(roster_port)],
                    tmp_path / "roster.log",
                    {
                        **common,
                        "CLIENT_ID": roster["client_id"],
                        "CLIENT_SECRET": roster["client_secret"],
                        "ORG_ID": oid,
                        "WEBHOOK_SECRET": roster["webhook_secret"],
                    },
                    roster_port,
                )
            )
            examples.append(
                start_example(
                    [str(ROOT / "examples/mini_program/app.py"), "--port", str(notes_port)],
                    tmp_path / "notes.log",
                    {**common, "CLIENT_ID": notes["client_id"]},
                    notes_port,
                )
            )
            assert platform["worker"].poll() is None, (tmp_path / "worker.log").read_text()
            # Not added to Acme yet: no org token.
            assert org_token(base, roster, oid).status_code == 400
            assert example_state(roster_port) == "switched-off"

            # 2. The owner adds Team Roster, seeing the member fields it will receive.
            olivia = new_page(browser)
            sign_in(olivia, base, "olivia", PASSWORDS["olivia"], "/console")
            olivia.get_by_role("link", name="Acme").click()
            olivia.get_by_role("link", name="App Center").first.click()
            olivia.get_by_role("link", name="Add Team Roster to the organization").click()
            scope_box = olivia.locator('input[name="scopes"][value="org.members.read"]')
            assert scope_box.is_checked()
            assert field_names(olivia.locator("li.shared-field")) == ["avatar", "nickname", "user_id"]
            olivia.get_by_role("button", name="Add Team Roster").click()
            olivia.goto(f"{base}/admin/orgs/{oid}/apps/{roster['client_id']}")
            assert text_of(olivia, "#state") == "on"

            # The app fetches an org token and lists the members: 200.
            token = org_token(base, roster, oid)
            assert token.status_code == 200, token.text
            first_token = token.json()["access_token"]
            listed = members(base, oid, first_token)
            assert listed.status_code == 200
            assert sorted(m["nickname"] for m in listed.json()["members"]) == ["Olivia", "Pat"]
            assert example_state(roster_port) == "ok"

            # Switch off, after the impact preview: the very next request is refused.
            preview = switch(olivia, base, oid, roster["client_id"], "Switch off…", "Switch off Team Roster")
            assert preview["members"] == 2
            assert preview["fields"] == ["avatar", "nickname", "user_id"]
            assert "stop flowing" in preview["text"]
            assert text_of(olivia, "#state") == "off"
            refused = members(base, oid, first_token)
            assert refused.status_code == 401
            assert org_token(base, roster, oid).status_code == 400  # no new org token while off
            assert example_state(roster_port) == "switched-off"

            # Switch on again, without adding anew.
            preview = switch(olivia, base, oid, roster["client_id"], "Switch on…", "Switch on Team Roster")
            assert preview["members"] == 2 and preview["fields"] == ["avatar", "nickname", "user_id"]
            assert text_of(olivia, "#state") == "on"
            assert members(base, oid, first_token).status_code == 200
            assert example_state(roster_port) == "ok"

            # 3. Pat signs in to Pocket Notes (login form, consent), which shows the nickname.
            pat = new_page(browser)
            pat.goto(f"http://127.0.0.1:{notes_port}/")
            pat.get_by_role("link", name="Sign in").click()
            fill_login_form(pat, "pat", PASSWORDS["pat"])
            assert "/consent/" in pat.url
            pat.get_by_role("button", name="Allow").click()
            pat.wait_for_url(f"http://127.0.0.1:{notes_port}/callback**")
            assert text_of(pat, "#nickname") == "Pat"

            # Pat's privacy center: Pocket Notes with its fields; Team Roster read-only with who decided.
            pat.goto(f"{base}/privacy")
            grant = pat.locator(f'article.grant[data-client-id="{notes["client_id"]}"]')
            assert text_of(pat, f'article.grant[data-client-id="{notes["client_id"]}"] h3') == "Pocket Notes"
            assert sorted(
                grant.locator("ul.fields li").evaluate_all("els => els.map(e => e.dataset.field)")
            ) == [
                "avatar",
                "nickname",
                "user_id",
            ]
            org_row = f'tr.org-app[data-client-id="{roster["client_id"]}"]'
            assert "Team Roster" in text_of(pat, org_row)
            assert text_of(pat, f"{org_row} td.decided").startswith("Olivia")
            assert pat.locator(f"{org_row} a").count() == 0  # read-only: the organization decides

            # Both apps' disclosures about Pat, each with a proof verified against a checkpoint.
            def verified_rows() -> dict[str, int]:
                pat.goto(f"{base}/privacy/disclosures")
                rows = pat.locator("tr.disclosure")
                if rows.count() == 0 or pat.locator("tr.disclosure .verified").count() != rows.count():
                    return {}
                apps: dict[str, int] = {}
                for i in range(rows.count()):
                    name = rows.nth(i).locator("td.app").inner_text()
                    apps[name] = apps.get(name, 0) + 1
                # Four member listings while on: the test's and the example's, before off and after on;
                # Pocket Notes: the id_token's subject and /v1/me. Wait until all are sequenced.
                complete = apps.get("Team Roster", 0) >= 4 and apps.get("Pocket Notes", 0) >= 2
                return apps if complete else {}

            seen = eventually(verified_rows, "both apps' disclosures to be verified in Pat's history")
            assert seen["Team Roster"] == 4  # and no more: nothing was disclosed while off

            # Pat withdraws Pocket Notes: its next request is refused; the example notices.
            pat.goto(f"{base}/privacy")
            pat.locator(f'article.grant[data-client-id="{notes["client_id"]}"] a.revoke-app').click()
            pat.get_by_role("button", name="Yes, withdraw").click()
            assert pat.url == f"{base}/privacy"
            assert pat.locator(f'article.grant[data-client-id="{notes["client_id"]}"]').count() == 0
            pat.goto(f"http://127.0.0.1:{notes_port}/")
            assert pat.locator("#state").get_attribute("data-state") == "withdrawn"

            # 4. The owner removes Team Roster, after the impact preview saying tokens are revoked.
            preview = switch(
                olivia, base, oid, roster["client_id"], "Remove from the organization…", "Remove Team Roster"
            )
            assert "revokes every token" in preview["text"]
            assert members(base, oid, first_token).status_code == 401
            assert org_token(base, roster, oid).status_code == 400
            assert example_state(roster_port) == "switched-off"

        # The signed events: Team Roster's webhook verified each one, in order.
        expected = [
            "installation.installed",
            "installation.disabled",
            "installation.enabled",
            "installation.removed",
        ]
        assert eventually(lambda: example_events(roster_port) == expected, "Team Roster's events")
        # Pocket Notes' events, checked with the example's verifier and the per-app secret.
        received = notes_hooks.wait_for(3, timeout=30)
        bodies = [json.loads(r.body) for r in received]
        assert [b["type"] for b in bodies] == ["grant.created", "grant.revoked", "deletion.requested"]
        assert bodies[2]["data"]["user_id"] == bodies[1]["data"]["user_id"]  # delete what it received
        for r in received:
            assert verify(notes["webhook_secret"], r.headers, r.body)
            assert verify(roster["webhook_secret"], r.headers, r.body) is None
        assert bodies[1]["data"]["scopes"] == ["openid", "profile"]
        assert bodies[0]["data"]["user_id"] == bodies[1]["data"]["user_id"] != people["pat"]  # pairwise
    finally:
        for proc in examples:
            proc.kill()
            proc.wait(10)
        notes_hooks.stop()
