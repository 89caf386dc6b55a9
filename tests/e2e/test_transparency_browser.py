"""Transparency and control in a real browser (issue 14, "Done when"): a person asks why Pocket Notes
gets her nickname and sees the reasons; she adds a scope through the link of a 403 and the app's next
refresh carries it; she withdraws one scope and the app receives ``grant.updated`` and a deletion
request it acknowledges; the developer's pages, API answers and exports never show her platform id;
the app asks for a field beyond its data label and is flagged to the operator. Debian's chromium
through Playwright; fails (never skips) without it."""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from broker.apps import registry as apps_svc
from broker.events.webhooks import Worker
from tests.support.browser import chromium, create_person, fill_login_form, new_page, sign_in
from tests.support.privacy import sequence
from tests.support.webhook_receiver import Receiver

CALLBACK = "http://127.0.0.1:8765/callback"
LABEL = [{"field": "nickname", "purpose": "to greet you by name", "retention_days": 30}]


@pytest.mark.browser
def test_explain_incremental_consent_withdrawal_and_pairwise_ids_in_a_browser(live_server, store) -> None:
    app, base = live_server.app, live_server.url
    settings = replace(app.extensions["broker.settings"], webhook_allow_private=True)
    hooks = Receiver()
    devon = create_person(store, "devon", "Devon")
    alice = create_person(store, "alice", "Alice")
    record, secret, _ = apps_svc.register_app(
        store,
        settings,
        app.extensions["broker.catalog"],
        {
            "kind": "mini_program",
            "client_type": "confidential",
            "name": "Pocket Notes",
            "developer_id": devon,
            "contact": "dev@notes.example",
            "privacy_policy_url": "https://notes.example/privacy",
            "redirect_uris": [CALLBACK],
            "scopes": ["openid", "profile"],
            "webhook_url": hooks.url,
            "data_label": LABEL,  # avatar is asked for but not declared
        },
    )
    cid = record["client_id"]
    assert secret
    auth = (cid, secret)
    try:
        with chromium() as browser:
            page = new_page(browser)
            landed: list[str] = []

            def callback(route) -> None:
                landed.append(route.request.url)
                route.fulfill(status=200, content_type="text/html", body="<p>back in the app</p>")

            page.route(f"{CALLBACK}**", callback)

            # 1. The app asks for the profile only; she allows her nickname (avatar unticked).
            page.goto(
                f"{base}/oauth/authorize?"
                + urlencode(
                    {
                        "response_type": "code",
                        "client_id": cid,
                        "redirect_uri": CALLBACK,
                        "scope": "profile",
                        "state": "s1",
                    }
                )
            )
            fill_login_form(page, "alice", "alice-password")
            assert (
                page.locator('[data-label-field="nickname"]')
                .inner_text()
                .startswith("The app says: to greet")
            )
            page.get_by_label("Your profile picture").uncheck()
            page.get_by_role("button", name="Allow").click()
            page.wait_for_url(f"{CALLBACK}**")
            code = parse_qs(urlsplit(landed[-1]).query)["code"][0]
            tokens = requests.post(
                f"{base}/oauth/token",
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
                auth=auth,
                timeout=10,
            ).json()
            assert tokens["scope"] == "profile"

            # 2. /v1/me needs openid: a 403 with where to grant it; she follows the link and allows it;
            #    the app's next refresh carries it.
            refused = requests.get(
                f"{base}/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
            )
            assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
            page.goto(refused.json()["grant_url"])
            page.get_by_role("button", name="Allow").click()
            assert page.url == f"{base}/privacy"
            refreshed = requests.post(
                f"{base}/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                auth=auth,
                timeout=10,
            ).json()
            assert refreshed["scope"].split() == ["openid", "profile"]
            me = requests.get(
                f"{base}/v1/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"}, timeout=10
            )
            assert me.status_code == 200 and set(me.json()) == {"user_id", "nickname"}

            # 3. "Why does Pocket Notes get this?"
            grant_card = page.locator(f'article.grant[data-client-id="{cid}"]')
            assert "does not declare in its data label: avatar" in grant_card.inner_text()
            grant_card.locator("a.explain").click()
            nickname = page.locator('tr.explain-field[data-field="nickname"]')
            assert (
                nickname.get_attribute("data-released") == "yes" and "you allowed it" in nickname.inner_text()
            )
            avatar = page.locator('tr.explain-field[data-field="avatar"]')
            assert avatar.get_attribute("data-released") == "no"
            assert "you left it out when you allowed the app" in avatar.inner_text()

            # 4. She withdraws the profile: the app gets grant.updated and a deletion request it
            #    acknowledges; her privacy center shows when.
            page.goto(f"{base}/privacy")
            page.locator(
                f'article.grant[data-client-id="{cid}"] li[data-scope="profile"] a.revoke-scope'
            ).click()
            page.get_by_role("button", name="Yes, withdraw").click()
            worker = Worker(store, settings)
            for _ in range(10):
                worker.run_once()
            worker.close()
            events = {
                e["type"]: e["data"] for e in (json.loads(r.body) for r in hooks.wait_for(4, timeout=30))
            }
            assert events["grant.updated"]["scopes"] == ["openid"]
            request_id = events["deletion.requested"]["request_id"]
            assert events["deletion.requested"]["fields"] == ["nickname"]
            page.goto(f"{base}/privacy")
            row = page.locator(f'tr.deletion-request[data-request-id="{request_id}"]')
            assert row.locator("td.acked").inner_text() == "not yet"
            acked = requests.post(f"{base}/v1/deletion-requests/{request_id}/ack", auth=auth, timeout=10)
            assert acked.status_code == 200
            page.reload()
            assert (
                page.locator(f'tr.deletion-request[data-request-id="{request_id}"] td.acked').inner_text()
                != "not yet"
            )

            # 5. The developer's pages, API answers and exports name her by the pairwise id only.
            sequence(store, settings)
            dev_page = new_page(browser)
            sign_in(dev_page, base, "devon", "devon-password", "/developer/")
            seen = [dev_page.content()]
            dev_page.goto(f"{base}/developer/apps/{cid}")
            seen.append(dev_page.content())
            assert dev_page.locator("#label-drift").count() == 1
            for path in (
                f"/developer/v1/apps/{cid}",
                f"/developer/v1/apps/{cid}/disclosures",
                f"/developer/v1/apps/{cid}/disclosures?format=csv",
                "/developer/v1/disclosures?format=ndjson",
            ):
                answer = dev_page.request.get(f"{base}{path}")
                assert answer.status == 200, path
                seen.append(answer.text())
            assert all(alice not in text for text in seen)
            assert me.json()["user_id"] in seen[3]  # the id Pocket Notes knows her by

        # 6. The operator sees the app flagged: it asks for a field its label does not declare.
        flagged = requests.get(
            f"{base}/internal/v1/apps?flagged=true",
            headers={"Authorization": f"Bearer {settings.platform_api_key}"},
            timeout=10,
        ).json()["apps"]
        assert [(a["client_id"], a["label_drift"]) for a in flagged] == [(cid, ["avatar"])]
    finally:
        hooks.stop()
