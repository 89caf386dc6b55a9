"""Pairwise everywhere a developer looks (issue 14, item 1): every page, API answer and export of the
developer console names people by the id the app received (per app, and per organization for an
installation), never the platform's own user id. The test walks every GET route of the developer
area (pages and ``/developer/v1``, with their exports) and scans each answer for the people's ids."""

from __future__ import annotations

from typing import Any

from broker.core.pairwise import pairwise_id
from tests.support.developer import notes_and_roster
from tests.support.signin import session_sign_in


def test_no_developer_facing_answer_names_a_person_by_the_platform_id(app, client, store, settings) -> None:
    w = notes_and_roster(client, store, settings)
    dev, alice, bob, mini, org_app, oid = w.dev, w.alice, w.bob, w.mini, w.org_app, w.oid

    session_sign_in(client, dev)
    paths = [
        "/developer/",
        "/developer/apps/new",
        "/developer/v1/csrf-token",
        "/developer/v1/apps",
        "/developer/v1/disclosures",
        "/developer/v1/disclosures?format=csv",
        "/developer/v1/disclosures?format=ndjson",
    ]
    for cid in (mini, org_app):
        paths += [
            f"/developer/apps/{cid}",
            f"/developer/apps/{cid}/edit",
            f"/developer/apps/{cid}/delete",
            f"/developer/apps/{cid}/disclosures",
            f"/developer/v1/apps/{cid}",
            f"/developer/v1/apps/{cid}/disclosures",
            f"/developer/v1/apps/{cid}/disclosures?format=csv",
            f"/developer/v1/apps/{cid}/disclosures?format=ndjson",
        ]
    # the history page filtered by the ids the apps know, by organization, by days
    bob_in_org = pairwise_id(settings.pairwise_key, org_app, bob, oid)
    paths += [
        f"/developer/apps/{mini}/disclosures?person={pairwise_id(settings.pairwise_key, mini, alice)}",
        f"/developer/apps/{org_app}/disclosures?person={bob_in_org}",
        f"/developer/apps/{org_app}/disclosures?org={oid}&since=2000-01-01&until=2999-12-31",
    ]
    rules = {
        r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/developer") and "GET" in r.methods
    }
    covered = {p.split("?")[0].replace(mini, "<client_id>").replace(org_app, "<client_id>") for p in paths}
    assert rules <= covered, f"developer GET routes not scanned: {sorted(rules - covered)}"

    bodies: dict[str, str] = {}
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        bodies[path] = response.get_data(as_text=True)
    for path, body in bodies.items():
        for uid in (alice, bob):
            assert uid not in body, f"{path} names a person by the platform id"
        if "/v1/" not in path:
            assert '{"' not in body, f"{path} prints raw JSON"  # pages show tables, not records

    # ... and names them by the ids the apps know, so the developer can still tell who was disclosed
    listing: dict[str, Any] = client.get(f"/developer/v1/apps/{mini}/disclosures").get_json()
    assert {e["record"]["user_id"] for e in listing["records"]} == {
        pairwise_id(settings.pairwise_key, mini, alice)
    }
    in_org = client.get(f"/developer/v1/apps/{org_app}/disclosures").get_json()["records"]
    assert {e["record"]["user_id"] for e in in_org} == {
        pairwise_id(settings.pairwise_key, org_app, uid, oid) for uid in (alice, bob)
    }
    # the developer filters by the id they know
    seen_as = pairwise_id(settings.pairwise_key, org_app, bob, oid)
    one = client.get(f"/developer/v1/apps/{org_app}/disclosures?person={seen_as}").get_json()["records"]
    assert [e["record"]["user_id"] for e in one] == [seen_as]
    mine = client.get(
        f"/developer/v1/apps/{mini}/disclosures?person={pairwise_id(settings.pairwise_key, mini, alice)}"
    )
    assert len(mine.get_json()["records"]) == 1
    assert client.get(f"/developer/v1/apps/{mini}/disclosures?person=u_unknown").get_json()["records"] == []
