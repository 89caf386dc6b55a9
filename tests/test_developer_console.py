"""Developer console: register, see the secret once, edit, rotate, delete; JSON API; CSRF; ownership."""

from __future__ import annotations

import json
import re
import time

import pytest

from broker.apps import registry as apps_svc
from broker.core.hashing import keyed_hash
from broker.storage import keys
from tests.support.apps import outbox_events
from tests.support.developer import FORM, register
from tests.support.factories import make_installation, make_org, make_token, make_user
from tests.support.ledger import journal_records
from tests.support.signin import session_sign_in

JSON_APP = {
    "kind": "mini_program",
    "client_type": "public",
    "name": "Notes",
    "contact": "dev@example.com",
    "privacy_policy_url": "https://notes.example.com/privacy",
    "redirect_uris": ["http://127.0.0.1:8765/callback"],
    "scopes": ["openid", "profile"],
}


@pytest.fixture
def dev(app, client, store) -> str:
    app.config["WTF_CSRF_ENABLED"] = False
    uid = make_user(store, username="devon")
    session_sign_in(client, uid)
    return uid


def secret_on(html: str, element_id: str) -> str | None:
    match = re.search(rf'id="{element_id}">([^<]+)<', html)
    return match.group(1) if match else None


def test_signed_out_pages_redirect_to_login_and_apis_answer_401(client) -> None:
    page = client.get("/developer/apps/new")
    assert page.status_code == 303
    assert page.headers["Location"] == "/login?next=%2Fdeveloper%2Fapps%2Fnew"
    api = client.get("/developer/v1/apps")
    assert api.status_code == 401
    assert api.mimetype == "application/problem+json"
    assert api.get_json()["error"] == "unauthorized"


def test_register_shows_the_client_secret_once(client, store, settings, dev) -> None:
    client_id = register(client)
    record = apps_svc.get_app(store, client_id)
    assert record is not None and record["developer_id"] == dev
    assert record["redirect_uris"] == ["https://roster.example.com/cb", "https://roster.example.com/cb2"]
    assert record["scopes"] == ["org.members.read"]
    first = client.get(f"/developer/apps/{client_id}")
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    html = first.get_data(as_text=True)
    secret = secret_on(html, "client-secret")
    assert secret and secret.startswith("brk_cs_")
    assert (secret_on(html, "webhook-secret") or "").startswith("whsec_")
    assert apps_svc.verify_secret(store, settings, client_id, secret)
    # stored only as its keyed hash
    assert list(store.redis.hkeys(keys.app_secrets(client_id))) == [
        keyed_hash(settings.token_hash_key, secret)
    ]
    again = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    assert secret not in again and secret_on(again, "client-secret") is None
    assert "No disclosures yet." in again and "No deliveries yet." in again


def test_bad_registration_names_each_field_and_writes_nothing(client, store, dev) -> None:
    response = client.post(
        "/developer/apps",
        data={
            **FORM,
            "kind": "gadget",
            "privacy_policy_url": "http://example.com/p",
            "name": "",
            "scopes": "nope",
        },
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    for name in ("kind", "privacy_policy_url", "name", "scopes"):
        assert f'data-field="{name}"' in html, name
    assert 'role="alert"' in html
    assert store.redis.zcard(keys.apps_all()) == 0
    missing = client.post("/developer/apps", data={"name": "x"})
    assert missing.status_code == 400
    for name in ("kind", "client_type", "contact", "privacy_policy_url", "scopes"):
        assert f'data-field="{name}"' in missing.get_data(as_text=True), name


def test_edit_changes_fields_and_rejects_bad_values(client, store, dev) -> None:
    client_id = register(client)
    edit = {k: v for k, v in FORM.items() if k not in ("kind", "client_type")}
    page = client.get(f"/developer/apps/{client_id}/edit")
    assert page.status_code == 200 and "Roster" in page.get_data(as_text=True)
    bad = client.post(f"/developer/apps/{client_id}/edit", data={**edit, "webhook_url": "ftp://x"})
    assert bad.status_code == 400
    assert 'data-field="webhook_url"' in bad.get_data(as_text=True)
    assert apps_svc.require_app(store, client_id)["webhook_url"] == FORM["webhook_url"]
    good = client.post(f"/developer/apps/{client_id}/edit", data={**edit, "name": "Roster 2"})
    assert good.status_code == 303 and good.headers["Location"] == f"/developer/apps/{client_id}"
    assert apps_svc.require_app(store, client_id)["name"] == "Roster 2"


def test_rotate_secret_keeps_the_old_one_for_the_overlap(client, store, settings, dev) -> None:
    client_id = register(client)
    old = secret_on(client.get(f"/developer/apps/{client_id}").get_data(as_text=True), "client-secret")
    assert old
    before = int(time.time())
    response = client.post(f"/developer/apps/{client_id}/secret")
    assert response.status_code == 303
    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    new = secret_on(html, "client-secret")
    assert new and new != old
    assert apps_svc.verify_secret(store, settings, client_id, new)
    assert apps_svc.verify_secret(store, settings, client_id, old)
    expires = [json.loads(v)["expires"] for v in store.redis.hvals(keys.app_secrets(client_id))]
    retire = [e for e in expires if e is not None]
    assert len(retire) == 1 and retire[0] >= before + settings.secret_overlap_seconds
    assert 'id="previous-expires"' in html
    assert "retiring, valid until" in html


def test_rotate_webhook_secret(client, store, settings, dev) -> None:
    client_id = register(client)
    client.get(f"/developer/apps/{client_id}")
    old = apps_svc.webhook_secret(store, settings, client_id)
    assert client.post(f"/developer/apps/{client_id}/webhook-secret").status_code == 303
    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    new = apps_svc.webhook_secret(store, settings, client_id)
    assert new != old and secret_on(html, "webhook-secret") == new


def test_revoke_previous_secrets_ends_a_leaked_secret_at_once(client, store, settings, dev) -> None:
    """Rotate, then "Revoke previous secrets now": the old secret stops authenticating at the token
    endpoint on the very next request, not at the end of the overlap."""
    client_id = register(client)
    old = secret_on(client.get(f"/developer/apps/{client_id}").get_data(as_text=True), "client-secret")
    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    assert 'id="revoke-previous-secrets"' not in html  # one secret: nothing to revoke yet
    client.post(f"/developer/apps/{client_id}/secret")
    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    new = secret_on(html, "client-secret")
    assert 'id="revoke-previous-secrets"' in html and "Revoke previous secrets now" in html

    def introspect(secret: str | None) -> int:
        return client.post("/oauth/introspect", data={"token": "x"}, auth=(client_id, secret)).status_code

    assert introspect(old) == 200 and introspect(new) == 200  # both work during the overlap
    response = client.post(f"/developer/apps/{client_id}/secret/revoke-previous")
    assert response.status_code == 303
    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    assert "Previous client secrets revoked: 1. Only the current one works now." in html
    assert 'id="revoke-previous-secrets"' not in html
    assert introspect(old) == 401 and introspect(new) == 200
    assert [m["expires"] for m in apps_svc.secrets_meta(store, client_id, int(time.time()))] == [None]


def test_json_api_revokes_previous_secrets(client, store, settings, dev) -> None:
    client_id = register(client)
    rotated = client.post(f"/developer/v1/apps/{client_id}/secret").get_json()["client_secret"]
    first = client.post(f"/developer/v1/apps/{client_id}/secret/revoke-previous")
    assert first.status_code == 200 and first.get_json() == {"client_id": client_id, "revoked": 1}
    assert first.headers["Cache-Control"] == "no-store"
    again = client.post(f"/developer/v1/apps/{client_id}/secret/revoke-previous")
    assert again.get_json() == {"client_id": client_id, "revoked": 0}
    assert apps_svc.verify_secret(store, settings, client_id, rotated)
    public = client.post("/developer/v1/apps", json=JSON_APP).get_json()["client_id"]
    refused = client.post(f"/developer/v1/apps/{public}/secret/revoke-previous")
    assert refused.status_code == 409
    webhook = client.post(f"/developer/v1/apps/{client_id}/webhook-secret/revoke-previous")
    assert webhook.get_json() == {"client_id": client_id, "revoked": False}
    client.post(f"/developer/v1/apps/{client_id}/webhook-secret")
    overview = client.get(f"/developer/v1/apps/{client_id}").get_json()
    assert (
        overview["previous_webhook_secret_expires"] >= int(time.time()) + settings.secret_overlap_seconds - 5
    )
    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    assert 'id="previous-webhook-expires"' in html
    assert client.post(f"/developer/apps/{client_id}/webhook-secret/revoke-previous").status_code == 303
    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    assert "The previous webhook secret no longer signs deliveries." in html
    assert 'id="previous-webhook-expires"' not in html
    assert client.get(f"/developer/v1/apps/{client_id}").get_json()["previous_webhook_secret_expires"] is None


def test_installations_and_grant_counts_are_shown(client, store, dev) -> None:
    client_id = register(client)
    apps_svc.review_app(store, client_id, "approve")  # the operator lists it
    oid = make_org(store, [make_user(store)], name="Acme")
    make_installation(store, client_id, oid, enabled=False)
    store.redis.sadd(keys.app_installations(client_id), oid)
    store.redis.sadd(keys.app_grants(client_id), "usr_0000000000000001", "usr_0000000000000002")
    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    assert '<strong id="grant-count">2</strong>' in html
    assert f'data-org-id="{oid}"><td>Acme</td>' in html and "disabled" in html
    body = client.get(f"/developer/v1/apps/{client_id}").get_json()
    assert body["grant_count"] == 2
    assert body["installations"] == [
        {
            "org_id": oid,
            "org_name": "Acme",
            "enabled": False,
            "scopes": ["org.members.read"],
            "fields": ["user_id", "nickname", "avatar"],  # no choice stored: every field of the scope
        }
    ]
    assert body["disclosures"] == {"available": True, "items": []}
    assert body["deliveries"]["items"] == [] and body["deliveries"]["dead"] == []


def test_delete_needs_confirmation_then_revokes_everything(client, store, settings, dev) -> None:
    client_id = register(client)
    apps_svc.review_app(store, client_id, "approve")  # the operator lists it
    member = make_user(store)
    oid = make_org(store, [member])
    iid = make_installation(store, client_id, oid)
    store.redis.sadd(keys.app_installations(client_id), oid)
    store.redis.sadd(keys.org_installations(oid), client_id)
    token = make_token(
        store, settings, client_id, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/v1/orgs/{oid}/members", headers=headers).status_code == 200
    seen = len(journal_records(store, client_id))
    confirm = client.get(f"/developer/apps/{client_id}/delete")
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.get_data(as_text=True)
    wrong = client.post(f"/developer/apps/{client_id}/delete", data={"confirm": "nope"})
    assert wrong.status_code == 400 and apps_svc.get_app(store, client_id) is not None
    done = client.post(f"/developer/apps/{client_id}/delete", data={"confirm": "Roster"})
    assert done.status_code == 303 and done.headers["Location"] == "/developer/"
    assert apps_svc.get_app(store, client_id) is None
    assert not store.redis.exists(keys.installation(client_id, oid))
    assert not store.redis.sismember(keys.org_installations(oid), client_id)
    assert client.get(f"/v1/orgs/{oid}/members", headers=headers).status_code == 401
    assert len(journal_records(store, client_id)) == seen


def test_another_developers_app_is_404(client, store, dev) -> None:
    client_id = register(client)
    session_sign_in(client, make_user(store))
    for method, path in (
        ("get", f"/developer/apps/{client_id}"),
        ("get", f"/developer/apps/{client_id}/edit"),
        ("post", f"/developer/apps/{client_id}/secret"),
        ("post", f"/developer/apps/{client_id}/delete"),
        ("get", f"/developer/v1/apps/{client_id}"),
        ("delete", f"/developer/v1/apps/{client_id}"),
    ):
        response = getattr(client, method)(path)
        assert response.status_code == 404, path
    assert apps_svc.get_app(store, client_id) is not None
    assert client.get("/developer/v1/apps").get_json() == {"apps": []}


def test_json_api_lifecycle(client, store, settings, dev) -> None:
    created = client.post("/developer/v1/apps", json=JSON_APP)
    assert created.status_code == 201
    body = created.get_json()
    client_id = body["client_id"]
    assert created.headers["Location"] == f"/developer/v1/apps/{client_id}"
    assert "client_secret" not in body and body["webhook_secret"].startswith("whsec_")
    assert body["developer_id"] == dev
    listed = client.get("/developer/v1/apps").get_json()["apps"]
    assert [a["client_id"] for a in listed] == [client_id]
    patched = client.patch(f"/developer/v1/apps/{client_id}", json={"name": "Notes 2"})
    assert patched.status_code == 200 and patched.get_json()["name"] == "Notes 2"
    public_rotate = client.post(f"/developer/v1/apps/{client_id}/secret")
    assert public_rotate.status_code == 409
    assert client.delete(f"/developer/v1/apps/{client_id}").status_code == 204
    assert apps_svc.get_app(store, client_id) is None


def test_json_api_names_bad_fields(client, store, dev) -> None:
    bad = client.post(
        "/developer/v1/apps",
        json={**JSON_APP, "developer_id": "usr_0000000000000000", "redirect_uris": ["https://x/#f"]},
    )
    assert bad.status_code == 400
    assert bad.mimetype == "application/problem+json"
    assert set(bad.get_json()["errors"]) == {"developer_id", "redirect_uris"}
    scope = client.post("/developer/v1/apps", json={**JSON_APP, "scopes": ["openid", "org.members.read"]})
    assert scope.status_code == 400 and scope.get_json()["error"] == "invalid_scope"
    form = client.post("/developer/v1/apps", data={"name": "x"})
    assert form.status_code == 415
    assert store.redis.zcard(keys.apps_all()) == 0


def test_post_without_csrf_token_is_refused(app, client, store) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    uid = make_user(store)
    session_sign_in(client, uid)
    page = client.post("/developer/apps", data=FORM)
    assert page.status_code == 400
    assert "csrf_failed" in page.get_data(as_text=True)
    api = client.post("/developer/v1/apps", json=JSON_APP)
    assert api.status_code == 400 and api.get_json()["error"] == "csrf_failed"
    assert store.redis.zcard(keys.apps_all()) == 0
    token = client.get("/developer/v1/csrf-token").get_json()["csrf_token"]
    ok = client.post("/developer/v1/apps", json=JSON_APP, headers={"X-CSRFToken": token})
    assert ok.status_code == 201
    form_token = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/developer/apps/new").get_data(as_text=True)
    )
    assert form_token
    assert client.post("/developer/apps", data={**FORM, "csrf_token": form_token.group(1)}).status_code == 303


def test_no_event_or_secret_in_outbox_on_register(client, store, dev) -> None:
    client_id = register(client)
    assert outbox_events(store, client_id) == []


@pytest.mark.browser
def test_browser_developer_registers_an_app_and_rotates_its_secret(live_server, store) -> None:
    from tests.support.browser import create_person, signed_in_page

    uid = create_person(store, "devon", "Devon")
    with signed_in_page(live_server.url, "devon", "devon-password", "/developer/") as page:
        page.get_by_role("link", name="Register an app").click()
        page.get_by_role("radio", name=re.compile("^App Center app")).check()
        page.get_by_role("radio", name=re.compile("^Confidential")).check()
        page.get_by_label("Name", exact=True).fill("Roster")
        page.get_by_role("textbox", name="Contact").fill("dev@example.com")
        page.get_by_label("Privacy policy URL").fill("https://roster.example.com/privacy")
        page.get_by_label("Redirect URIs").fill("https://roster.example.com/cb")
        page.locator('input[name="scopes"][value="org.members.read"]').check()
        page.get_by_role("button", name="Register").click()
        page.wait_for_url(re.compile(r".*/developer/apps/app_[0-9a-f]{16}$"))
        client_id = page.url.rsplit("/", 1)[1]
        first = page.locator("#client-secret").inner_text()
        assert first.startswith("brk_cs_")
        assert apps_svc.require_app(store, client_id)["developer_id"] == uid
        page.reload()
        assert page.locator("#client-secret").count() == 0
        page.get_by_role("button", name="Rotate client secret").click()
        page.wait_for_selector("#client-secret")
        second = page.locator("#client-secret").inner_text()
        assert second.startswith("brk_cs_") and second != first
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", page.locator("#previous-expires").inner_text()
        )
    settings = live_server.app.extensions["broker.settings"]
    assert apps_svc.verify_secret(store, settings, client_id, first)
    assert apps_svc.verify_secret(store, settings, client_id, second)


def test_developer_reads_their_apps_disclosures_with_filters_and_export(
    app, client, store, settings, dev
) -> None:
    from broker.ledger.sequencer import Sequencer
    from tests.support.factories import make_token, raw_grant

    client_id = register(client)
    person = make_user(store, nickname="Pat")
    gid = raw_grant(store, client_id, person, "openid profile", "user_id nickname")
    token = make_token(
        store, settings, client_id, kind="grant", subject=person, grant_id=gid, scopes="openid profile"
    )
    for _ in range(3):
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    Sequencer(store, app.extensions["broker.keyring"], settings).run_once()

    body = client.get(f"/developer/v1/apps/{client_id}/disclosures?limit=2").get_json()
    assert [e["record"]["app"] for e in body["records"]] == [client_id, client_id]
    assert body["records"][0]["record"]["fields"] == ["nickname", "user_id"]
    assert body["next_cursor"]
    everything = client.get("/developer/v1/disclosures").get_json()["records"]
    assert len(everything) == 3
    ndjson = client.get(f"/developer/v1/apps/{client_id}/disclosures?format=ndjson")
    assert ndjson.mimetype == "application/x-ndjson"
    assert len(ndjson.get_data(as_text=True).strip().splitlines()) == 3
    assert client.get(f"/developer/v1/apps/{client_id}/disclosures?limit=500").status_code == 400
    session_sign_in(client, make_user(store))
    assert client.get(f"/developer/v1/apps/{client_id}/disclosures").status_code == 404
    assert client.get("/developer/v1/disclosures").get_json()["records"] == []
