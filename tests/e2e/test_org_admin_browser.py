"""Organization administration in a real browser (issue 13, "Done when"): the admin limits Team
Roster to one department and to the nickname only, and the app sees exactly those members and that
field; a sub-admin who may manage members takes one out of the department and the app's next page no
longer has him, while the app pages stay closed to her; a member finds the notice in the privacy
center; the org's deletion through the platform API ends every token and tells the app. Debian's
chromium through Playwright; fails (never skips) without it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import requests

from broker.apps import registry as apps_svc
from broker.directory import departments
from broker.directory.service import set_role
from broker.events.webhooks import Worker
from tests.support.browser import chromium, create_person, new_page, sign_in
from tests.support.factories import make_org
from tests.support.webhook_receiver import Receiver

SCOPES = ["org.members.read", "org.departments.read", "org.read"]


@pytest.mark.browser
def test_an_admin_limits_team_roster_and_everyone_sees_what_she_decided(live_server, store) -> None:
    app, base = live_server.app, live_server.url
    settings = replace(app.extensions["broker.settings"], webhook_allow_private=True)
    hooks = Receiver()
    people = {
        name: create_person(store, name, name.capitalize())
        for name in ("olga", "sam", "ann", "bob", "cid", "devon")
    }
    oid = make_org(store, [people[n] for n in ("olga", "sam", "ann", "bob", "cid")], name="Acme")
    set_role(store, oid, people["olga"], "owner")
    set_role(store, oid, people["sam"], "sub_admin", ["members.manage"])
    eng = departments.create(store, oid, "Engineering")["id"]
    sales = departments.create(store, oid, "Sales")["id"]
    departments.assign(store, oid, people["ann"], [eng])
    departments.assign(store, oid, people["bob"], [eng])
    departments.assign(store, oid, people["cid"], [sales])
    record, secret, _ = apps_svc.register_app(
        store,
        settings,
        app.extensions["broker.catalog"],
        {
            "kind": "org_app",
            "client_type": "confidential",
            "name": "Team Roster",
            "developer_id": people["devon"],
            "contact": "dev@roster.example",
            "privacy_policy_url": "https://roster.example/privacy",
            "redirect_uris": ["https://roster.example/cb"],
            "scopes": SCOPES,
            "webhook_url": hooks.url,
        },
    )
    cid = record["client_id"]
    assert secret
    auth = (cid, secret)

    def org_token() -> requests.Response:
        return requests.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials", "org_id": oid},
            auth=auth,
            timeout=10,
        )

    def members(token: str) -> requests.Response:
        return requests.get(
            f"{base}/v1/orgs/{oid}/members", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    try:
        with chromium() as browser:
            # 1. Olga adds Team Roster for Engineering only, with the nickname only.
            olga = new_page(browser)
            sign_in(olga, base, "olga", "olga-password", f"/admin/orgs/{oid}/app-center")
            olga.get_by_role("link", name="Add Team Roster to the organization").click()
            assert olga.locator('input[name="scopes"][value="org.departments.read"]').is_checked() is False
            assert olga.locator('input[name="fields"][value="user_id"]').is_disabled()
            olga.get_by_label("Each member's profile picture").uncheck()
            olga.get_by_label("Only the members of these departments and their sub-departments:").check()
            olga.get_by_label("Engineering").check()
            olga.get_by_role("button", name="Add Team Roster").click()
            assert olga.url.endswith(f"/admin/orgs/{oid}/apps/{cid}")
            flowing = olga.locator("#flowing li").all_inner_texts()
            assert flowing == [
                "user_id: Each member's user ID, different for every app",
                "nickname: Each member's nickname",
            ]

            # 2. The app sees exactly Ann and Bob, and only their nicknames (and its ids for them).
            issued = org_token()
            assert issued.status_code == 200, issued.text
            token = issued.json()["access_token"]
            page = members(token).json()["members"]
            assert sorted(m["nickname"] for m in page) == ["Ann", "Bob"]
            assert all(set(m) == {"user_id", "nickname"} for m in page)

            # 3. Sam (members.manage) takes Bob out of Engineering: the app's next page has Ann only.
            sam = new_page(browser)
            sign_in(sam, base, "sam", "sam-password", f"/admin/orgs/{oid}/departments/{eng}")
            sam.get_by_role("button", name="Take Bob out").click()
            assert [m["nickname"] for m in members(token).json()["members"]] == ["Ann"]
            # ... and exactly that: the apps, the disclosures and the sub-admins are not hers
            for path in (
                f"/admin/orgs/{oid}/apps/{cid}",
                f"/admin/orgs/{oid}/apps/{cid}/disable",
                f"/admin/v1/orgs/{oid}/disclosures",
                f"/admin/orgs/{oid}/admins",
            ):
                assert sam.goto(f"{base}{path}").status == 403, path
            assert sam.goto(f"{base}/admin/orgs/{oid}/members").status == 200
            audit = sam.goto(f"{base}/admin/orgs/{oid}/audit")  # what was done, her own steps too
            assert audit.status == 200 and "Sam" in sam.locator("table").inner_text()

            # 4. Ann finds the notice: who decided, what Team Roster receives about her.
            ann = new_page(browser)
            sign_in(ann, base, "ann", "ann-password", "/privacy")
            notice = ann.locator(f'li.notice[data-client-id="{cid}"][data-what="installed"]')
            text = notice.inner_text()
            assert "Olga added Team Roster to Acme." in text and "Your nickname" in text
            assert "profile picture" not in text
            # Cid (Sales) is not covered: nothing to tell him
            cid_page = new_page(browser)
            sign_in(cid_page, base, "cid", "cid-password", "/privacy")
            assert cid_page.locator(f'li.notice[data-client-id="{cid}"]').count() == 0

        # 5. The platform deletes the organization: every token ends and the app is told.
        deleted = requests.delete(
            f"{base}/internal/v1/orgs/{oid}",
            headers={"Authorization": f"Bearer {settings.platform_api_key}"},
            timeout=10,
        )
        assert deleted.status_code in (200, 204), deleted.text
        assert members(token).status_code in (401, 404)
        again = org_token()
        assert again.status_code == 400 and "access_token" not in again.json()
        worker = Worker(store, settings)
        for _ in range(10):
            worker.run_once()
        worker.close()
        types = [json.loads(r.body)["type"] for r in hooks.wait_for(3, timeout=30)]
        assert types[0] == "installation.installed" and "installation.removed" in types
    finally:
        hooks.stop()
