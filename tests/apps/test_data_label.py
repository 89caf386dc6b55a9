"""Data labels (issue 14, item 3): an app declares the fields it uses, why and for how long; what its
scopes reach beyond that is drift, shown to the developer, to people and admins, and flagged to the
operator."""

from __future__ import annotations

from typing import Any

from broker.apps import registry as apps_svc
from broker.storage import keys
from tests.support.apps import mini_payload
from tests.support.factories import make_grant, make_token, make_user
from tests.support.privacy import sequence
from tests.support.signin import session_sign_in

LABEL = [{"field": "nickname", "purpose": "to greet you", "retention_days": 30}]


def test_drift_is_shown_to_the_developer_the_person_and_flagged_to_the_operator(
    app, client, store, settings
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    h = {"Authorization": f"Bearer {settings.platform_api_key}"}
    dev = make_user(store, username="devon")
    created = client.post(
        "/internal/v1/apps",
        json={**mini_payload(dev, scopes=["openid", "profile"]), "data_label": LABEL},
        headers=h,
    )
    assert created.status_code == 201
    body = created.get_json()
    cid = body["client_id"]
    assert body["data_label"] == LABEL and body["label_drift"] == ["avatar"]
    flagged = client.get("/internal/v1/apps?flagged=true", headers=h).get_json()["apps"]
    assert [a["client_id"] for a in flagged] == [cid]
    assert client.get("/internal/v1/apps?flagged=maybe", headers=h).status_code == 400

    session_sign_in(client, dev)
    page = client.get(f"/developer/apps/{cid}").get_data(as_text=True)
    assert 'id="label-drift"' in page and "avatar" in page.split('id="label-drift"')[1].split("</p>")[0]

    alice = make_user(store, username="alice")
    gid = make_grant(store, settings, cid, alice, "openid profile", "user_id nickname avatar")
    # the ledger shows what it actually received: avatar too (declared vs actual)
    token = make_token(
        store, settings, cid, kind="grant", subject=alice, grant_id=gid, scopes="openid profile"
    )
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    sequence(store, settings)
    view = client.get(f"/internal/v1/apps/{cid}", headers=h).get_json()
    assert view["received_beyond_label"] == ["avatar"]
    session_sign_in(client, alice)
    listed = client.get("/privacy/v1/apps").get_json()["apps"]
    assert listed[0]["label_drift"] == ["avatar"]
    assert "does not declare in its data label: avatar" in client.get("/privacy").get_data(as_text=True)

    # the developer declares the rest through the console form: the flag goes
    session_sign_in(client, dev)
    form = {
        "name": body["name"],
        "contact": body["contact"],
        "privacy_policy_url": body["privacy_policy_url"],
        "redirect_uris": "\n".join(body["redirect_uris"]),
        "scopes": body["scopes"],
        "label_field": ["nickname", "avatar"],
        "label_purpose_nickname": "to greet you",
        "label_retention_nickname": "30",
        "label_purpose_avatar": "to show you on shared lists",
        "label_retention_avatar": "0",
    }
    assert client.post(f"/developer/apps/{cid}/edit", data=form).status_code == 303
    view = client.get(f"/internal/v1/apps/{cid}", headers=h).get_json()
    assert view["label_drift"] == [] and {e["field"] for e in view["data_label"]} == {"nickname", "avatar"}
    assert view["received_beyond_label"] == []
    assert client.get("/internal/v1/apps?flagged=true", headers=h).get_json()["apps"] == []


def test_a_bad_label_is_refused_naming_it_and_nothing_is_written(client, store, settings) -> None:
    h = {"Authorization": f"Bearer {settings.platform_api_key}"}
    dev = make_user(store)
    before = store.redis.zcard(keys.apps_all())
    cases: list[Any] = [
        [{"field": "email", "purpose": "x", "retention_days": 1}],  # not shareable
        [{"field": "shoe_size", "purpose": "x", "retention_days": 1}],  # unknown
        [{"field": "nickname", "purpose": "", "retention_days": 1}],  # no purpose
        [{"field": "nickname", "purpose": "x", "retention_days": -1}],  # bad retention
        [LABEL[0], LABEL[0]],  # twice
        [{"field": "nickname", "purpose": "x"}],  # retention missing
    ]
    for label in cases:
        bad = client.post("/internal/v1/apps", json={**mini_payload(dev), "data_label": label}, headers=h)
        assert bad.status_code == 400, label
        assert "data_label" in bad.get_json()["errors"], bad.get_json()
    assert store.redis.zcard(keys.apps_all()) == before
    assert apps_svc.list_apps(store, dev) == []
