"""One real browser (Debian's chromium through Playwright) through the whole privacy story:
the person signs in through the login form the authorization request leads to, consents with an
optional field unticked, the app reads /v1/me, the person sees the verified disclosure, withdraws one
scope, then removes the app. Fails (never skips) without chromium."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from broker.apps import registry as apps_svc
from broker.core.keyring import Keyring
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from tests.support.browser import chromium, create_person, fill_login_form, new_page
from tests.support.factories import make_user
from tests.support.ledger import journal_records

CALLBACK = "http://127.0.0.1:8765/callback"


@pytest.mark.browser
def test_consent_disclosure_history_and_revocation_in_a_browser(live_server, store) -> None:
    app = live_server.app
    settings = app.extensions["broker.settings"]
    base = live_server.url
    dev = make_user(store, nickname="DevDora")
    uid = create_person(store, "alice", "Alice")
    record, _, _ = apps_svc.register_app(
        store,
        settings,
        app.extensions["broker.catalog"],
        {
            "kind": "mini_program",
            "client_type": "public",
            "name": "Notes",
            "description": "Keeps your notes",
            "developer_id": dev,
            "contact": "dev@example.com",
            "privacy_policy_url": "https://example.com/privacy",
            "redirect_uris": [CALLBACK],
            "scopes": ["openid", "profile"],
        },
    )
    client_id = record["client_id"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    authorize = f"{base}/oauth/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CALLBACK,
            "scope": "openid profile",
            "state": "st-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    with chromium() as browser:
        page = new_page(browser)
        landed: list[str] = []

        def callback(route) -> None:  # the app's redirect URI: capture the code, answer a page
            landed.append(route.request.url)
            route.fulfill(status=200, content_type="text/html", body="<p>back in the app</p>")

        page.route(f"{CALLBACK}**", callback)

        # 1. Not signed in: the request leads to the login form, then to consent; the optional
        #    avatar is unticked.
        page.goto(authorize)
        assert "/login" in page.url
        fill_login_form(page, "alice", "alice-password")
        assert "/consent/" in page.url
        page.get_by_label("Your profile picture").uncheck()
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(f"{CALLBACK}**")
        q = {k: v[0] for k, v in parse_qs(urlsplit(landed[-1]).query).items()}
        assert q["state"] == "st-1"

        # 2. The app exchanges the code and reads /v1/me.
        token = requests.post(
            f"{base}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": q["code"],
                "redirect_uri": CALLBACK,
                "client_id": client_id,
                "code_verifier": verifier,
            },
            timeout=10,
        )
        assert token.status_code == 200, token.text
        access = token.json()["access_token"]
        me = requests.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {access}"}, timeout=10)
        assert me.status_code == 200
        assert set(me.json()) == {"user_id", "nickname"}

        # 3. The sequencer runs; the person sees the verified disclosure.
        Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()
        page.goto(f"{base}/privacy/disclosures")
        # Two disclosures: the id_token's subject at the token endpoint, and /v1/me.
        rows = page.locator("tr.disclosure")
        assert rows.count() == 2
        assert [rows.nth(i).locator("td.app").inner_text() for i in range(2)] == ["Notes", "Notes"]
        assert sorted(rows.nth(i).locator("td.fields").inner_text() for i in range(2)) == [
            "nickname, user_id",
            "user_id",
        ]
        assert page.locator("tr.disclosure .verified").count() == 2

        # 4. Withdraw the profile scope, with its confirmation page.
        page.goto(f"{base}/privacy")
        grant = page.locator(f'article.grant[data-client-id="{client_id}"]')
        assert grant.locator('li[data-field="avatar"]').count() == 0
        grant.locator('li[data-scope="profile"] a.revoke-scope').click()
        assert page.locator("p.question").count() == 1
        page.get_by_role("button", name="Yes, withdraw").click()
        assert page.url == f"{base}/privacy"
        assert page.locator("p.flash").inner_text() == "Notes no longer receives “profile”."
        me = requests.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {access}"}, timeout=10)
        assert me.status_code == 200
        assert set(me.json()) == {"user_id"}

        # 5. Remove the app.
        page.locator(f'article.grant[data-client-id="{client_id}"] a.revoke-app').click()
        page.get_by_role("button", name="Yes, withdraw").click()
        assert page.url == f"{base}/privacy"
        assert page.locator("#no-apps").count() == 1
        before = len(journal_records(store, client_id))
        me = requests.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {access}"}, timeout=10)
        assert me.status_code == 401
        assert len(journal_records(store, client_id)) == before
        assert store.redis.exists(keys.grant(client_id, uid)) == 0
