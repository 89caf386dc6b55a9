"""Server-side sessions: sign-out, password change and account deletion end sessions at once; the
privacy center lists and ends them; lifetimes; a Redis dump holds no usable cookie; the login limits
do not let an attacker lock the owner out; re-authentication for account deletion."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from broker.app import create_app
from broker.directory import sessions
from broker.storage import keys
from tests.support.factories import make_user
from tests.support.signin import session_sign_in

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
FORM_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
PASSWORD = "alice-password"


@pytest.fixture
def web_app(settings, store) -> Any:
    """CSRF on, as in production; small login limits."""
    return create_app(replace(settings, login_max_failures=3, login_max_failures_per_ip=50), store)


@pytest.fixture
def alice(store) -> str:
    return make_user(store, "alice", PASSWORD, nickname="Alice")


def browser(
    app: Any, address: str = "127.0.0.1", agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
) -> Any:
    client = app.test_client()
    client.environ_base.update({"REMOTE_ADDR": address, "HTTP_USER_AGENT": agent})
    return client


def login_token(client: Any) -> str:
    match = CSRF_RE.search(client.get("/login?force=1").get_data(as_text=True))
    assert match
    return match.group(1)


def sign_in(client: Any, username: str = "alice", password: str = PASSWORD) -> Any:
    return client.post(
        "/login", data={"csrf_token": login_token(client), "username": username, "password": password}
    )


def cookie_of(client: Any) -> str:
    found = client.get_cookie("broker_session")
    assert found is not None
    return str(found.value)


def api_csrf(client: Any) -> dict[str, str]:
    return {"X-CSRFToken": client.get("/privacy/v1/csrf-token").get_json()["csrf_token"]}


def page_csrf(client: Any, path: str) -> str:
    match = FORM_CSRF_RE.search(client.get(path).get_data(as_text=True))
    assert match, path
    return match.group(1)


# -- sign-out ----------------------------------------------------------------------------------------


def test_a_copied_cookie_is_dead_after_sign_out(web_app, alice) -> None:
    owner = browser(web_app)
    assert sign_in(owner).status_code == 303
    copied = cookie_of(owner)
    thief = browser(web_app, "192.0.2.66")
    thief.set_cookie("broker_session", copied)
    assert thief.get("/privacy/v1/apps").status_code == 200  # the copy works while the session lives

    assert owner.post("/logout", data={"csrf_token": page_csrf(owner, "/")}).status_code == 303
    refused = thief.get("/privacy/v1/apps")
    assert refused.status_code == 401 and refused.mimetype == "application/problem+json"
    assert thief.get("/privacy").status_code == 303  # a page sends it to the login page


def test_sign_in_gets_a_new_session_id_and_csrf_keeps_working(web_app, alice) -> None:
    client = browser(web_app)
    token = login_token(client)
    before = cookie_of(client)  # the anonymous session holding the login form's CSRF token
    assert (
        client.post(
            "/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD}
        ).status_code
        == 303
    )
    after = cookie_of(client)
    assert after != before and after.startswith(alice + ".")  # no fixation
    stale = browser(web_app)
    stale.set_cookie("broker_session", before)
    assert stale.get("/privacy/v1/apps").status_code == 401
    # CSRF (flask-wtf keeps its token in the session) still guards the session's writes.
    assert client.post("/privacy/v1/sessions/end-all").status_code == 400
    assert client.get("/privacy/v1/apps").status_code == 200


def test_redis_holds_no_usable_cookie(web_app, alice, store) -> None:
    client = browser(web_app)
    sign_in(client)
    cookie = cookie_of(client)
    secret = cookie.split(".", 1)[1]
    dump = []
    for key in store.redis.scan_iter(match="b:*"):
        dump.append(key)
        if store.redis.type(key) == "hash":
            dump.extend(store.redis.hgetall(key).values())
        elif store.redis.type(key) == "zset":
            dump.extend(store.redis.zrange(key, 0, -1))
    assert dump and not any(secret in str(item) for item in dump)


def test_a_malformed_or_forged_cookie_is_nobody(web_app, alice) -> None:
    for value in ("garbage", f"{alice}.{'A' * 43}", "x" * 3000, f"{alice}.{alice}"):
        client = browser(web_app)
        client.set_cookie("broker_session", value)
        assert client.get("/privacy/v1/apps").status_code == 401


# -- password change and reset -------------------------------------------------------------------------


def test_password_change_ends_the_other_sessions_and_keeps_this_one(web_app, alice) -> None:
    laptop, phone = browser(web_app), browser(web_app, "198.51.100.7", "Mozilla/5.0 (iPhone) Safari/604.1")
    sign_in(laptop)
    sign_in(phone)
    form = {
        "csrf_token": page_csrf(laptop, "/privacy/password"),
        "current_password": PASSWORD,
        "new_password": "a-new-password",
        "confirm_password": "a-new-password",
    }
    done = laptop.post("/privacy/password", data=form)
    assert done.status_code == 303 and done.headers["Location"].endswith("/privacy/sessions")
    assert laptop.get("/privacy/v1/apps").status_code == 200
    assert phone.get("/privacy/v1/apps").status_code == 401
    assert sign_in(phone).status_code == 401  # the old password is gone
    assert sign_in(phone, password="a-new-password").status_code == 303


def test_password_change_needs_the_current_password(web_app, alice) -> None:
    laptop, phone = browser(web_app), browser(web_app, "198.51.100.7")
    sign_in(laptop)
    sign_in(phone)
    body = {"current_password": "not-my-password", "new_password": "a-new-password"}
    wrong = laptop.post("/privacy/v1/password", json=body, headers=api_csrf(laptop))
    assert wrong.status_code == 403 and wrong.get_json()["error"] == "reauth_required"
    short = laptop.post("/privacy/v1/password", json={"current_password": PASSWORD, "new_password": "x"},
                        headers=api_csrf(laptop))  # fmt: skip
    assert short.status_code == 400 and "new_password" in short.get_json()["errors"]
    assert phone.get("/privacy/v1/apps").status_code == 200  # nothing changed


def test_a_password_reset_by_the_platform_ends_every_session(web_app, alice, settings) -> None:
    laptop = browser(web_app)
    sign_in(laptop)
    api = web_app.test_client()
    reset = api.patch(
        f"/internal/v1/users/{alice}",
        json={"password": "reset-by-admin"},
        headers={"Authorization": f"Bearer {settings.platform_api_key}"},
    )
    assert reset.status_code == 200
    assert laptop.get("/privacy/v1/apps").status_code == 401


def test_account_deletion_ends_every_session(web_app, alice, store) -> None:
    laptop, phone = browser(web_app), browser(web_app, "198.51.100.7")
    sign_in(laptop)
    sign_in(phone)
    gone = laptop.post(
        "/privacy/v1/account/delete", json={"confirm_username": "alice"}, headers=api_csrf(laptop)
    )
    assert gone.status_code == 200
    assert phone.get("/privacy/v1/apps").status_code == 401
    assert store.redis.zcard(keys.user_sessions(alice)) == 0
    assert not list(store.redis.scan_iter(match=keys.session(alice, "*")))


# -- the privacy center's sessions ------------------------------------------------------------------


def test_sessions_page_and_api_list_and_end_sessions(web_app, alice) -> None:
    laptop = browser(web_app)
    phone = browser(web_app, "198.51.100.7", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1")
    sign_in(laptop)
    sign_in(phone)
    listed = laptop.get("/privacy/v1/sessions").get_json()["sessions"]
    assert {s["device"] for s in listed} == {"Firefox on Linux", "Safari on iOS"}
    assert {s["address"] for s in listed} == {"127.0.0.1", "198.51.100.7"}
    assert [s["current"] for s in listed if s["address"] == "127.0.0.1"] == [True]
    assert all(s["created_at"] <= s["last_used_at"] for s in listed)
    assert not any("." in s["id"] or s["id"] in cookie_of(laptop) for s in listed)  # never the cookie

    page = laptop.get("/privacy/sessions").get_data(as_text=True)
    assert "Safari on iOS" in page and "198.51.100.7" in page and "Sign out everywhere" in page
    phone_sid = next(s["id"] for s in listed if not s["current"])
    ended = laptop.post(
        f"/privacy/sessions/{phone_sid}/end", data={"csrf_token": page_csrf(laptop, "/privacy/sessions")}
    )
    assert ended.status_code == 303
    assert phone.get("/privacy/v1/apps").status_code == 401
    assert laptop.get("/privacy/v1/apps").status_code == 200
    assert laptop.post(f"/privacy/v1/sessions/{phone_sid}/end", headers=api_csrf(laptop)).status_code == 404
    assert (
        laptop.post("/privacy/v1/sessions/not-a-session-id/end", headers=api_csrf(laptop)).status_code == 404
    )


def test_sign_out_everywhere(web_app, alice) -> None:
    laptop, phone = browser(web_app), browser(web_app, "198.51.100.7")
    sign_in(laptop)
    sign_in(phone)
    done = laptop.post(
        "/privacy/sessions/end-all", data={"csrf_token": page_csrf(laptop, "/privacy/sessions")}
    )
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    assert laptop.get("/privacy/v1/apps").status_code == 401
    assert phone.get("/privacy/v1/apps").status_code == 401


def test_another_persons_session_cannot_be_ended(web_app, alice, store) -> None:
    make_user(store, "bob", "bob-password")
    alice_browser, bob_browser = browser(web_app), browser(web_app, "198.51.100.9")
    sign_in(alice_browser)
    sign_in(bob_browser, "bob", "bob-password")
    bob_sid = bob_browser.get("/privacy/v1/sessions").get_json()["sessions"][0]["id"]
    refused = alice_browser.post(f"/privacy/v1/sessions/{bob_sid}/end", headers=api_csrf(alice_browser))
    assert refused.status_code == 404
    assert bob_browser.get("/privacy/v1/apps").status_code == 200


# -- lifetimes and bounded storage -------------------------------------------------------------------


def test_idle_and_absolute_lifetimes(settings, store, alice) -> None:
    app = create_app(replace(settings, session_idle_seconds=600, session_max_seconds=3600), store)
    client = browser(app)
    sign_in(client)
    cookie = cookie_of(client)
    key = keys.session(alice, sessions.digest_of(settings, cookie))
    assert 0 < store.redis.ttl(key) <= 600  # idle: the key expires unless used
    assert 3000 < store.redis.ttl(keys.user_sessions(alice)) <= 3600
    # Past the absolute lifetime the session is refused, however recently used.
    store.redis.hset(key, "created", str(int(store.redis.hget(key, "created")) - 3600))
    assert client.get("/privacy/v1/apps").status_code == 401
    assert not store.redis.exists(key)


def test_the_index_drops_expired_sessions(web_app, alice, store, settings) -> None:
    old = sessions.create(store, settings, alice, {"uid": alice, "auth_time": 1}, now=1_000)
    idle = sessions.create(store, settings, alice, {"uid": alice, "auth_time": 1})
    store.redis.delete(keys.session(alice, sessions.digest_of(settings, idle.cookie)))  # idle TTL passed
    live = sessions.create(store, settings, alice, {"uid": alice, "auth_time": 1})
    assert [s.sid for s in sessions.list_for(store, alice)] == [live.sid]
    assert store.redis.zcard(keys.user_sessions(alice)) == 1
    assert old.sid != live.sid


def test_session_keys_of_one_person_share_a_slot(settings, alice) -> None:
    from redis.cluster import key_slot

    slots = {key_slot(keys.user_sessions(alice).encode()), key_slot(keys.session(alice, "a" * 64).encode())}
    assert len(slots) == 1


# -- login limits without lockout ------------------------------------------------------------------


def test_an_attacker_cannot_lock_the_owner_out(web_app, alice) -> None:
    owner = browser(web_app, "203.0.113.10")
    assert sign_in(owner).status_code == 303  # the owner's usual address
    owner.post("/logout", data={"csrf_token": page_csrf(owner, "/")})
    attacker = browser(web_app, "192.0.2.66")
    answers = [sign_in(attacker, password=f"guess-{i}").status_code for i in range(8)]
    assert answers[:3] == [401, 401, 401] and set(answers[3:]) == {429}
    assert sign_in(owner).status_code == 303  # not held up by the attacker's failures


def test_failures_from_many_addresses_back_off_per_account(web_app, alice) -> None:
    for i in range(3):
        assert sign_in(browser(web_app, f"192.0.2.{i + 1}"), password="wrong").status_code == 401
    # Past the limit from anywhere, a new address waits (seconds, growing) instead of guessing at once.
    held = sign_in(browser(web_app, "192.0.2.50"), password="wrong")
    assert held.status_code == 429 and 1 <= int(held.headers["Retry-After"]) <= 5


# -- re-authentication -------------------------------------------------------------------------------


def test_account_deletion_needs_a_recent_password(app, client, alice, store) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    import time

    session_sign_in(client, alice, auth_time=int(time.time()) - 3600)
    no_password = client.post("/privacy/v1/account/delete", json={"confirm_username": "alice"})
    assert no_password.status_code == 403 and no_password.get_json()["error"] == "reauth_required"
    wrong = client.post(
        "/privacy/v1/account/delete", json={"confirm_username": "alice", "password": "nope-nope"}
    )
    assert wrong.status_code == 403
    page = client.post("/privacy/delete", data={"username": "alice"})
    assert page.status_code == 403 and "Enter your password again" in page.get_data(as_text=True)
    assert client.get("/privacy/v1/apps").status_code == 200  # still there
    done = client.post("/privacy/delete", data={"username": "alice", "password": PASSWORD})
    assert done.status_code == 303 and "/privacy/deleted" in done.headers["Location"]
    assert store.redis.hget(keys.user(alice), "status") == "deleted"


def _stale_sign_in(app: Any, client: Any, uid: str) -> None:
    """Signed in an hour ago: past BROKER_REAUTH_SECONDS."""
    import time

    app.config["WTF_CSRF_ENABLED"] = False
    session_sign_in(client, uid, auth_time=int(time.time()) - 3600)


def test_disbanding_an_org_needs_a_recent_password(app, client, alice, store) -> None:
    from broker.directory import service as directory

    oid = directory.create_org(store, {"name": "Acme"})["id"]
    directory.add_member(store, oid, alice, "owner")
    _stale_sign_in(app, client, alice)
    api = client.post(f"/admin/v1/orgs/{oid}/disband", json={"confirm": "Acme"})
    assert api.status_code == 403 and api.get_json()["error"] == "reauth_required"
    wrong = client.post(f"/admin/v1/orgs/{oid}/disband", json={"confirm": "Acme", "password": "nope-nope"})
    assert wrong.status_code == 403 and wrong.get_json()["errors"] == {"password": ["wrong password"]}
    page = client.post(f"/admin/orgs/{oid}/disband", data={"confirm": "Acme"})
    assert page.status_code == 403 and "Enter your password again" in page.get_data(as_text=True)
    assert directory.get_org(store, oid) is not None
    done = client.post(f"/admin/orgs/{oid}/disband", data={"confirm": "Acme", "password": PASSWORD})
    assert done.status_code == 303
    assert directory.get_org(store, oid) is None


def test_rotating_secrets_needs_a_recent_password(app, client, alice, store, settings) -> None:
    from tests.support.factories import make_app

    client_id, _ = make_app(store, settings, developer_id=alice)
    _stale_sign_in(app, client, alice)
    for kind in ("secret", "webhook-secret"):
        refused = client.post(f"/developer/v1/apps/{client_id}/{kind}")
        assert refused.status_code == 403 and refused.get_json()["error"] == "reauth_required"
        page = client.post(f"/developer/apps/{client_id}/{kind}", follow_redirects=True)
        assert "Enter your password again" in page.get_data(as_text=True)
        assert "Copy your new secret now" not in page.get_data(as_text=True)
    rotated = client.post(f"/developer/v1/apps/{client_id}/secret", json={"password": PASSWORD})
    assert rotated.status_code == 200 and rotated.get_json()["client_secret"]
    # The password just entered counts as a fresh sign-in for the next few minutes.
    assert client.post(f"/developer/v1/apps/{client_id}/webhook-secret").status_code == 200
    page = client.post(
        f"/developer/apps/{client_id}/secret", data={"password": PASSWORD}, follow_redirects=True
    )
    assert "Copy your new secret now" in page.get_data(as_text=True)


def test_a_wrong_reauth_password_counts_as_a_failed_login(settings, store, alice) -> None:
    import time

    app = create_app(replace(settings, login_max_failures=2), store)
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    session_sign_in(client, alice, auth_time=int(time.time()) - 3600)
    body = {"confirm_username": "alice", "password": "nope-nope"}
    answers = [client.post("/privacy/v1/account/delete", json=body).status_code for _ in range(3)]
    assert answers == [403, 403, 429]


# -- CSP form-action ---------------------------------------------------------------------------------


def test_forms_post_only_to_the_broker_except_on_the_way_to_the_app(web_app, alice, store, settings) -> None:
    from tests.support.factories import make_app

    client_id, _ = make_app(
        store, settings, redirect_uris=["https://app.example.com/cb", "https://app.example.com:8443/cb"]
    )
    client = browser(web_app)
    plain = client.get("/login").headers["Content-Security-Policy"]
    assert "form-action 'self';" in plain and "http:" not in plain
    on_the_way = client.get(f"/login?next=/oauth/authorize%3Fclient_id%3D{client_id}%26response_type%3Dcode")
    policy = on_the_way.headers["Content-Security-Policy"]
    assert "form-action 'self' https://app.example.com https://app.example.com:8443;" in policy
    sign_in(client)
    assert "form-action 'self';" in client.get("/privacy/sessions").headers["Content-Security-Policy"]


def test_a_session_before_sign_in_lives_an_hour_at_most(web_app, store, settings) -> None:
    client = browser(web_app)
    client.get("/login")  # the form's CSRF token is kept in a session before sign-in
    key = keys.anonymous_session(sessions.digest_of(settings, cookie_of(client)))
    assert settings.session_idle_seconds > 3600 and 0 < store.redis.ttl(key) <= 3600


def test_a_request_under_way_cannot_bring_an_ended_session_back(web_app, alice, store, settings) -> None:
    client = browser(web_app)
    sign_in(client)
    in_flight = sessions.load(store, settings, cookie_of(client))  # read as a request starts
    assert in_flight is not None
    sessions.end_all(store, alice)  # signed out everywhere meanwhile
    in_flight.data["csrf_token"] = "changed by that request"
    assert sessions.save(store, settings, in_flight) is False  # its end-of-request write
    assert client.get("/privacy/v1/apps").status_code == 401
    assert store.redis.zcard(keys.user_sessions(alice)) == 0


def test_developer_console_sets_the_logout_uris(app, client, alice, store, settings) -> None:
    from broker.apps import registry as apps_svc
    from tests.support.factories import make_app

    app.config["WTF_CSRF_ENABLED"] = False
    client_id, _ = make_app(store, settings, developer_id=alice)
    session_sign_in(client, alice)
    form = client.get(f"/developer/apps/{client_id}/edit").get_data(as_text=True)
    assert 'name="post_logout_redirect_uris"' in form and 'name="backchannel_logout_uri"' in form
    fields = {
        "name": "Test app",
        "contact": "dev@example.com",
        "privacy_policy_url": "https://app.example.com/privacy",
        "redirect_uris": "https://app.example.com/cb",
        "scopes": ["openid", "profile"],
        "webhook_url": "",
        "post_logout_redirect_uris": "https://app.example.com/bye\nhttps://app.example.com/later",
        "backchannel_logout_uri": "https://app.example.com/backchannel",
    }
    assert client.post(f"/developer/apps/{client_id}/edit", data=fields).status_code == 303
    record = apps_svc.get_app(store, client_id)
    assert record is not None
    assert record["post_logout_redirect_uris"] == [
        "https://app.example.com/bye",
        "https://app.example.com/later",
    ]
    assert record["backchannel_logout_uri"] == "https://app.example.com/backchannel"
    bad = client.post(
        f"/developer/apps/{client_id}/edit", data={**fields, "backchannel_logout_uri": "http://example.com/x"}
    )
    assert bad.status_code == 400 and 'id="backchannel_logout_uri-error"' in bad.get_data(as_text=True)
    api = client.patch(f"/developer/v1/apps/{client_id}", json={"post_logout_redirect_uris": ["nope"]})
    assert api.status_code == 400 and "post_logout_redirect_uris" in api.get_json()["errors"]
