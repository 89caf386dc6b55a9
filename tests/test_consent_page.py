"""The consent page: recipient, purpose and fields in two languages; field-level choices; CSRF."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker.app import create_app
from broker.apps import registry as apps
from broker.config import REPO_SCOPES_DIR
from broker.consent import grants as grants_svc
from broker.consent.grants import CONSENT_TEXT_VERSION
from broker.core import catalog as catalog_mod
from broker.storage import keys
from tests.support.apps import mini_payload
from tests.support.factories import make_user

RETURN_TO = "/oauth/authorize?client_id=x&state=s"


def _setup(client, store, settings, scopes=("openid", "profile"), app_scopes=None, **app_over: Any):
    catalog = catalog_mod.load(settings.scopes_dir)
    dev = make_user(store, nickname="Devon")
    payload = mini_payload(dev, scopes=list(app_scopes or scopes), **app_over)
    record, _, _ = apps.register_app(store, settings, catalog, payload)
    uid = make_user(store, nickname="Alice")
    with client.session_transaction() as s:
        s["uid"] = uid
        s["auth_time"] = 1
        s["interactions"] = {
            "i1": {
                "client_id": record["client_id"],
                "scopes": list(scopes),
                "return_to": RETURN_TO,
                "result": None,
            }
        }
    return record, uid, catalog


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _interaction(client) -> dict[str, Any]:
    with client.session_transaction() as s:
        return dict(s["interactions"]["i1"])


def test_signed_out_is_sent_to_login(client) -> None:
    response = client.get("/consent/i1")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=%2Fconsent%2Fi1"


def test_unknown_interaction_is_404_page(client, store, settings) -> None:
    _setup(client, store, settings)
    response = client.get("/consent/nope", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "unknown or has expired" in response.get_data(as_text=True)


def test_page_in_english_shows_recipient_purpose_and_fields(client, store, settings) -> None:
    _setup(client, store, settings, description="")
    response = client.get("/consent/i1", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Notes wants to access your information" in html
    assert '<dd class="developer">Devon</dd>' in html
    assert "dev@example.com" in html and 'href="https://example.com/privacy"' in html
    assert "Sign in and show your basic profile in Notes" in html
    assert "A user ID for you that is different for every app" in html
    assert "Your nickname" in html and "Your profile picture" in html
    assert re.search(r'checked disabled data-field="user_id"', html)
    assert re.search(r'name="field" value="nickname" checked', html)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_page_in_chinese_from_accept_language_and_switch(client, store, settings) -> None:
    _setup(client, store, settings)
    html = client.get("/consent/i1", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in html
    assert "Notes 请求访问你的信息" in html and "你的昵称" in html and "允许" in html
    switched = client.get("/consent/i1?lang=en", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "Your nickname" in switched
    remembered = client.get("/consent/i1", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "Your nickname" in remembered  # the explicit choice wins over the header
    back = client.get("/consent/i1?lang=zh").get_data(as_text=True)
    assert "你的头像" in back


def test_approve_with_all_fields(client, store, settings) -> None:
    record, uid, catalog = _setup(client, store, settings)
    token = _csrf(client.get("/consent/i1").get_data(as_text=True))
    response = client.post(
        "/consent/i1", data={"csrf_token": token, "action": "approve", "field": ["nickname", "avatar"]}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"{RETURN_TO}&interaction=i1"
    assert _interaction(client)["result"] == "approved"
    grant = store.redis.hgetall(keys.grant(record["client_id"], uid))
    assert grant["scopes"] == "openid profile"
    assert grant["fields"] == "user_id nickname avatar"
    assert grant["purpose"] == "Keeps your notes"
    assert grant["consent_version"] == grants_svc.consent_version(catalog, ["openid", "profile"])
    assert grant["consent_version"].startswith(f"{CONSENT_TEXT_VERSION}:openid@")


def test_unticking_an_optional_field_leaves_it_out(client, store, settings) -> None:
    record, uid, _ = _setup(client, store, settings)
    with client.session_transaction() as s:
        s["interactions"] = {"i1": {**s["interactions"]["i1"], "return_to": "/oauth/authorize"}}
    token = _csrf(client.get("/consent/i1").get_data(as_text=True))
    response = client.post(
        "/consent/i1", data={"csrf_token": token, "action": "approve", "field": ["avatar"]}
    )
    assert response.headers["Location"] == "/oauth/authorize?interaction=i1"
    grant = store.redis.hgetall(keys.grant(record["client_id"], uid))
    assert grant["fields"] == "user_id avatar"


def test_deny_sets_denied_and_stores_nothing(client, store, settings) -> None:
    record, uid, _ = _setup(client, store, settings)
    token = _csrf(client.get("/consent/i1").get_data(as_text=True))
    response = client.post("/consent/i1", data={"csrf_token": token, "action": "deny", "field": ["nickname"]})
    assert response.status_code == 303
    assert _interaction(client)["result"] == "denied"
    assert not store.redis.exists(keys.grant(record["client_id"], uid))


def test_missing_csrf_token_is_400(client, store, settings) -> None:
    record, uid, _ = _setup(client, store, settings)
    response = client.post("/consent/i1", data={"action": "approve"}, headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert "csrf_failed" in response.get_data(as_text=True)
    assert _interaction(client)["result"] is None
    assert not store.redis.exists(keys.grant(record["client_id"], uid))


def test_field_not_offered_is_rejected(client, store, settings) -> None:
    record, uid, _ = _setup(client, store, settings, scopes=("openid",), app_scopes=("openid", "profile"))
    token = _csrf(client.get("/consent/i1").get_data(as_text=True))
    response = client.post(
        "/consent/i1", data={"csrf_token": token, "action": "approve", "field": ["nickname"]}
    )
    assert response.status_code == 400
    assert not store.redis.exists(keys.grant(record["client_id"], uid))


def test_suspended_app_cannot_ask_for_consent(client, store, settings) -> None:
    record, _, _ = _setup(client, store, settings)
    apps.suspend_app(store, record["client_id"])
    assert client.get("/consent/i1").status_code == 403


SEPARATE = """
[fields.email]
sensitivity = "moderate"
shareable = true
description.en = "Your work email address"
description.zh = "你的工作邮箱"

[scopes.email]
audience = "individual"
fields = ["email"]
separate_consent = true
description.en = "See your work email address"
description.zh = "查看你的工作邮箱"
"""


@pytest.fixture
def separate_client(tmp_path: Path, settings, store) -> Any:
    scopes_dir = tmp_path / "scopes"
    scopes_dir.mkdir()
    basic = (REPO_SCOPES_DIR / "basic.toml").read_text()
    basic = basic.replace(
        '[fields.email]\nsensitivity = "moderate"\nshareable = false\n'
        'description.en = "Your email address"\ndescription.zh = "你的电子邮箱地址"\n',
        "",
    )
    (scopes_dir / "basic.toml").write_text(basic)
    (scopes_dir / "email.toml").write_text(SEPARATE)
    custom = replace(settings, scopes_dir=scopes_dir)
    application = create_app(custom, store)
    application.config["TESTING"] = True
    return application.test_client(), custom


def test_separate_consent_field_has_its_own_unticked_checkbox(separate_client, store) -> None:
    client, custom = separate_client
    record, uid, _ = _setup(client, store, custom, scopes=("openid", "profile", "email"))
    html = client.get("/consent/i1?lang=en").get_data(as_text=True)
    assert "Needs your separate consent" in html
    assert re.search(r'name="field" value="email">', html)  # present, not checked
    token = _csrf(html)
    client.post(
        "/consent/i1", data={"csrf_token": token, "action": "approve", "field": ["nickname", "avatar"]}
    )
    grant = store.redis.hgetall(keys.grant(record["client_id"], uid))
    assert grant["scopes"] == "openid profile" and "email" not in grant["fields"]
    client.post("/consent/i1", data={"csrf_token": token, "action": "approve", "field": ["email"]})
    grant = store.redis.hgetall(keys.grant(record["client_id"], uid))
    assert grant["scopes"] == "openid profile email"
    assert grant["fields"] == "user_id nickname avatar email"
    html = client.get("/consent/i1").get_data(as_text=True)
    assert re.search(r'name="field" value="email" checked', html)  # already granted: shown ticked


def test_foreign_return_to_is_never_followed(client, store, settings) -> None:
    _record, _, _ = _setup(client, store, settings)
    with client.session_transaction() as s:
        s["interactions"] = {"i1": {**s["interactions"]["i1"], "return_to": "//evil.example/x"}}
    response = client.get("/consent/i1")
    assert response.status_code == 404
    assert "Location" not in response.headers


def test_unknown_action_is_400_and_changes_nothing(client, store, settings) -> None:
    record, uid, _ = _setup(client, store, settings)
    token = _csrf(client.get("/consent/i1").get_data(as_text=True))
    response = client.post("/consent/i1", data={"csrf_token": token, "action": "maybe"})
    assert response.status_code == 400
    assert _interaction(client)["result"] is None
    assert not store.redis.exists(keys.grant(record["client_id"], uid))


def test_the_page_shows_the_apps_data_label_and_what_it_does_not_declare(client, store, settings) -> None:
    """Declared vs actual (issue 14, item 3): each field shows why the app says it uses it and how long
    it keeps it, or that its data label does not declare it."""
    label = [{"field": "nickname", "purpose": "to greet you", "retention_days": 30}]
    _setup(client, store, settings, data_label=label)
    html = client.get("/consent/i1").get_data(as_text=True)
    assert "The app says: to greet you; kept 30 days." in html
    assert 'class="label-missing" data-label-field="avatar"' in html
    assert 'class="label-missing" data-label-field="nickname"' not in html
