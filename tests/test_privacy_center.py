"""The privacy center: overview, revocation (immediate), disclosure history, receipts, export."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from broker.storage import keys
from tests.support.client import bearer
from tests.support.factories import (
    make_installation,
    make_org,
    make_token,
    make_user,
    raw_app,
    raw_grant,
)
from tests.support.ledger import journal_records, log_of, put_body, record_at
from tests.support.privacy import index_grant, index_installation, sequence
from tests.support.signin import session_sign_in


@pytest.fixture
def app(app: Any) -> Any:
    app.config["WTF_CSRF_ENABLED"] = False
    return app


@pytest.fixture
def person(store, settings) -> dict[str, Any]:
    dev = make_user(store, nickname="DevDora")
    uid = make_user(store, username="alice", nickname="Alice", avatar="https://a.example/alice.png")
    client_id = raw_app(store, developer_id=dev, name="Notes")
    gid = raw_grant(store, client_id, uid, "openid profile", "user_id nickname avatar")
    index_grant(store, client_id, uid)
    token = make_token(
        store, settings, client_id, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
    )
    return {"uid": uid, "client_id": client_id, "gid": gid, "token": token, "dev": dev}


# -- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/privacy", "/privacy/disclosures", "/privacy/receipts", "/privacy/delete", "/privacy/export"]
)
def test_pages_send_a_stranger_to_the_login_page(client, path) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=")
    assert path.replace("/", "%2F") in response.headers["Location"]


@pytest.mark.parametrize("path", ["/privacy/v1/apps", "/privacy/v1/export", "/privacy/v1/csrf-token"])
def test_json_api_answers_401_problem(client, path) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["error"] == "unauthorized"


def test_a_post_without_the_csrf_token_is_refused(app, client, store, person) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    session_sign_in(client, person["uid"])
    response = client.post(f"/privacy/apps/{person['client_id']}/revoke")
    assert response.status_code == 400
    response = client.post(f"/privacy/v1/apps/{person['client_id']}/revoke")
    assert response.status_code == 400
    assert store.redis.exists(keys.grant(person["client_id"], person["uid"])) == 1
    # With the header, the JSON POST goes through.
    token = client.get("/privacy/v1/csrf-token").get_json()["csrf_token"]
    response = client.post(f"/privacy/v1/apps/{person['client_id']}/revoke", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert store.redis.exists(keys.grant(person["client_id"], person["uid"])) == 0


# -- overview -------------------------------------------------------------------------------------


def test_overview_lists_grants_and_org_apps(client, store, settings, person) -> None:
    admin = make_user(store, nickname="AdminAmy")
    oid = make_org(store, [person["uid"]], name="Acme")
    org_app = raw_app(store, kind="org_app", name="Roster")
    make_installation(store, org_app, oid)
    index_installation(store, org_app, oid)
    store.redis.hset(keys.installation(org_app, oid), "installed_by", admin)
    session_sign_in(client, person["uid"])

    page = client.get("/privacy")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Notes" in html and "DevDora" in html
    assert "Your nickname" in html and "Your profile picture" in html
    assert "Roster" in html and "Acme" in html and "AdminAmy" in html
    assert f'href="/privacy/apps/{person["client_id"]}/scopes/profile/revoke"' in html

    zh = client.get("/privacy?lang=zh").get_data(as_text=True)
    assert "你的昵称" in zh and "你的隐私中心" in zh

    body = client.get("/privacy/v1/apps").get_json()
    [entry] = body["apps"]
    assert entry["client_id"] == person["client_id"]
    assert entry["developer"] == "DevDora"
    assert [f["name"] for f in entry["fields"]] == ["user_id", "nickname", "avatar"]
    assert entry["last_disclosure_at"] is None
    assert entry["pending_disclosures"] == 0
    [org_entry] = body["org_apps"]
    assert org_entry["installed_by_name"] == "AdminAmy"
    assert org_entry["enabled"] is True
    assert [f["name"] for f in org_entry["fields"]] == ["user_id", "nickname", "avatar"]


def test_overview_shows_last_disclosure_and_pending(client, store, settings, person) -> None:
    session_sign_in(client, person["uid"])
    assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 200
    [entry] = client.get("/privacy/v1/apps").get_json()["apps"]
    assert entry["pending_disclosures"] == 1
    assert entry["last_disclosure_at"] is None
    sequence(store, settings)
    [entry] = client.get("/privacy/v1/apps").get_json()["apps"]
    assert entry["pending_disclosures"] == 0
    [record] = client.get("/privacy/v1/disclosures").get_json()["records"]
    assert entry["last_disclosure_at"] == record["record"]["time"]


# -- revocation -----------------------------------------------------------------------------------


def test_revoke_app_has_a_confirmation_and_is_immediate(client, store, person) -> None:
    session_sign_in(client, person["uid"])
    confirm = client.get(f"/privacy/apps/{person['client_id']}/revoke")
    assert confirm.status_code == 200
    assert 'name="csrf_token"' in confirm.get_data(as_text=True)
    assert store.redis.exists(keys.grant(person["client_id"], person["uid"])) == 1

    response = client.post(f"/privacy/apps/{person['client_id']}/revoke")
    assert response.status_code == 303
    assert response.headers["Location"] == "/privacy"
    assert store.redis.exists(keys.grant(person["client_id"], person["uid"])) == 0

    before = journal_records(store, person["client_id"])
    me = client.get("/v1/me", headers=bearer(person["token"]))
    assert me.status_code == 401
    assert journal_records(store, person["client_id"]) == before
    # A second revocation of the same app: nothing to revoke.
    assert client.post(f"/privacy/apps/{person['client_id']}/revoke").status_code == 404


def test_revoke_profile_scope_drops_nickname_and_avatar_at_once(client, store, person) -> None:
    session_sign_in(client, person["uid"])
    full = client.get("/v1/me", headers=bearer(person["token"])).get_json()
    assert {"nickname", "avatar"} <= set(full)
    assert client.get(f"/privacy/apps/{person['client_id']}/scopes/profile/revoke").status_code == 200
    response = client.post(f"/privacy/apps/{person['client_id']}/scopes/profile/revoke")
    assert response.status_code == 303
    body = client.get("/v1/me", headers=bearer(person["token"])).get_json()
    assert set(body) == {"user_id"}
    assert journal_records(store, person["client_id"])[-1]["fields"] == ["user_id"]


def test_json_revoke_scope_and_app(client, store, person) -> None:
    session_sign_in(client, person["uid"])
    response = client.post(f"/privacy/v1/apps/{person['client_id']}/scopes/profile/revoke")
    assert response.status_code == 200
    assert response.get_json()["grant"]["scopes"] == ["openid"]
    response = client.post(f"/privacy/v1/apps/{person['client_id']}/scopes/profile/revoke")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    response = client.post(f"/privacy/v1/apps/{person['client_id']}/revoke")
    assert response.status_code == 200
    assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 401


@pytest.mark.parametrize("client_id", ["app_0000000000000000", "nonsense", "app_ZZZZ%3Cb%3E"])
def test_revoking_an_app_you_never_granted_is_not_found(client, store, person, client_id) -> None:
    session_sign_in(client, person["uid"])
    assert client.get(f"/privacy/apps/{client_id}/revoke").status_code == 404
    assert client.post(f"/privacy/v1/apps/{client_id}/revoke").status_code == 404


def test_someone_elses_grant_cannot_be_revoked(client, store, person) -> None:
    other = make_user(store)
    session_sign_in(client, other)
    assert client.post(f"/privacy/apps/{person['client_id']}/revoke").status_code == 404
    assert store.redis.exists(keys.grant(person["client_id"], person["uid"])) == 1


def test_unknown_scope_is_not_found(client, person) -> None:
    session_sign_in(client, person["uid"])
    assert client.get(f"/privacy/apps/{person['client_id']}/scopes/email/revoke").status_code == 404


# -- disclosures ----------------------------------------------------------------------------------


def test_disclosure_history_shows_verified_proofs(client, store, settings, person) -> None:
    session_sign_in(client, person["uid"])
    for _ in range(3):
        assert client.get("/v1/me", headers=bearer(person["token"])).status_code == 200
    sequence(store, settings)
    html = client.get("/privacy/disclosures").get_data(as_text=True)
    rows = re.findall(r'<tr class="disclosure" data-index="(\d+)"', html)
    assert rows == ["0", "1", "2"]
    assert html.count('class="verified"') == 3
    assert "leaf 0 of 3" in html
    assert "Notes" in html and "GET /v1/me" in html
    assert 'href="/ledger/v1/keys"' in html
    assert 'href="/privacy/v1/disclosures"' in html


def test_a_tampered_record_is_not_marked_verified(client, store, settings, person) -> None:
    session_sign_in(client, person["uid"])
    client.get("/v1/me", headers=bearer(person["token"]))
    sequence(store, settings)
    log = log_of(person["uid"], store)
    body = record_at(store, log, 0)
    body["fields"] = ["user_id"]
    put_body(store, log, 0, json.dumps(body))
    html = client.get("/privacy/disclosures").get_data(as_text=True)
    assert 'class="verified"' not in html
    assert 'class="error not-verified"' in html


def test_disclosures_not_yet_in_a_checkpoint_say_so(client, store, settings, person, monkeypatch) -> None:
    session_sign_in(client, person["uid"])
    client.get("/v1/me", headers=bearer(person["token"]))
    sequence(store, settings)
    client.get("/v1/me", headers=bearer(person["token"]))
    from broker.ledger import checkpoints

    monkeypatch.setattr(checkpoints, "sign", lambda *a, **k: None)
    sequence(store, settings)
    html = client.get("/privacy/disclosures").get_data(as_text=True)
    assert html.count('class="verified"') == 1
    assert html.count('class="muted not-yet"') == 1


def test_disclosure_filters_and_pagination(client, store, settings, person) -> None:
    other_app = raw_app(store, name="Other")
    gid = raw_grant(store, other_app, person["uid"], "openid", "user_id")
    index_grant(store, other_app, person["uid"])
    other_token = make_token(
        store, settings, other_app, kind="grant", subject=person["uid"], grant_id=gid, scopes="openid"
    )
    session_sign_in(client, person["uid"])
    for _ in range(22):
        client.get("/v1/me", headers=bearer(person["token"]))
    client.get("/v1/me", headers=bearer(other_token))
    sequence(store, settings)

    first = client.get("/privacy/disclosures").get_data(as_text=True)
    assert len(re.findall(r'<tr class="disclosure"', first)) == 20
    next_url = re.search(r'<a rel="next" class="next-page" href="([^"]+)"', first)
    assert next_url is not None
    second = client.get(next_url.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert len(re.findall(r'<tr class="disclosure"', second)) == 3
    assert 'rel="next"' not in second

    only_other = client.get(f"/privacy/disclosures?app={other_app}").get_data(as_text=True)
    assert re.findall(r'data-app="(app_[0-9a-f]+)"', only_other) == [other_app]

    future = client.get("/privacy/disclosures?since=2999-01-01T00:00:00").get_data(as_text=True)
    assert 'id="no-disclosures"' in future
    assert client.get("/privacy/disclosures?since=yesterday").status_code == 400
    assert client.get("/privacy/disclosures?app=bad").status_code == 400


def test_org_disclosures_name_the_org(client, store, settings) -> None:
    uid = make_user(store)
    oid = make_org(store, [uid], name="Acme")
    org_app = raw_app(store, kind="org_app", name="Roster")
    iid = make_installation(store, org_app, oid)
    index_installation(store, org_app, oid)
    token = make_token(
        store, settings, org_app, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    assert client.get(f"/v1/orgs/{oid}/members", headers=bearer(token)).status_code == 200
    sequence(store, settings)
    session_sign_in(client, uid)
    html = client.get("/privacy/disclosures").get_data(as_text=True)
    assert "Organization: Acme" in html
    assert 'class="verified"' in html


# -- receipts and export --------------------------------------------------------------------------


def test_receipts_page_links_downloads(client, store, settings, person) -> None:
    session_sign_in(client, person["uid"])
    assert 'id="no-receipts"' in client.get("/privacy/receipts").get_data(as_text=True)
    client.post(f"/privacy/apps/{person['client_id']}/scopes/profile/revoke")
    client.post(f"/privacy/apps/{person['client_id']}/revoke")
    html = client.get("/privacy/receipts").get_data(as_text=True)
    ids = re.findall(r'<tr class="receipt" data-id="([0-9a-f-]{36})"', html)
    assert len(ids) == 2
    assert re.findall(r'<td class="action">(\w+)</td>', html) == ["revoked", "changed"]
    download = client.get(f"/privacy/v1/receipts/{ids[0]}")
    assert f'href="/privacy/v1/receipts/{ids[0]}"' in html
    assert download.status_code == 200
    assert download.mimetype == "application/jose"
    assert client.get("/privacy/receipts?cursor=bogus").status_code == 400


def test_export_streams_everything_as_ndjson(client, store, settings, person) -> None:
    store.redis.hset(keys.user(person["uid"]), "password_hash", "$argon2id$secret")
    oid = make_org(store, [person["uid"]], name="Acme")
    session_sign_in(client, person["uid"])
    client.get("/v1/me", headers=bearer(person["token"]))
    sequence(store, settings)
    client.post(f"/privacy/apps/{person['client_id']}/scopes/profile/revoke")

    assert 'href="/privacy/v1/export"' in client.get("/privacy/export").get_data(as_text=True)
    response = client.get("/privacy/v1/export")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"] == 'attachment; filename="my-data.ndjson"'
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    assert "argon2" not in text and "password_hash" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["type"] for line in lines] == ["profile", "membership", "grant", "receipt", "disclosure"]
    assert lines[0]["data"]["nickname"] == "Alice"
    assert lines[1]["data"] == {"org_id": oid, "org_name": "Acme", "role": "member", "permissions": []}
    assert lines[2]["data"]["scopes"] == ["openid"]
    assert lines[3]["data"]["payload"]["action"] == "changed"
    assert lines[4]["data"]["person"] == person["uid"]


def test_json_csrf_failure_is_problem_json(app, client, person) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    session_sign_in(client, person["uid"])
    response = client.post(f"/privacy/v1/apps/{person['client_id']}/revoke", headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["error"] == "csrf_failed"
    page = client.post(f"/privacy/apps/{person['client_id']}/revoke")
    assert page.status_code == 400
    assert page.mimetype == "text/html"


def test_redis_failure_is_503(client, store, person, monkeypatch) -> None:
    import redis

    session_sign_in(client, person["uid"])

    def down(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("gone")

    monkeypatch.setattr(store.redis, "smembers", down)
    api = client.get("/privacy/v1/apps", headers={"Accept": "text/html"})
    assert api.status_code == 503
    assert api.mimetype == "application/problem+json"
    assert api.get_json()["error"] == "temporarily_unavailable"
    assert api.headers["Retry-After"] == "1"
    page = client.get("/privacy")
    assert page.status_code == 503
    assert page.mimetype == "text/html"
    export = client.get("/privacy/v1/export")
    assert export.status_code == 503
    assert store.redis.exists(keys.grant(person["client_id"], person["uid"])) == 1


@pytest.mark.parametrize(
    "path", ["/privacy/v1/apps/app_0000000000000000/revoke", "/privacy/v1/account/delete"]
)
def test_json_posts_from_a_stranger_are_401(client, path) -> None:
    response = client.post(path, json={})
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
