"""OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0 over real HTTP: an app (Authlib's
client) signs a person in, sends them to ``end_session_endpoint`` with its id_token, gets them back
with its ``state``, and its loopback back-channel endpoint receives a Logout Token it verifies
against the published JWKS; sign-out everywhere and a password change reach it the same way."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from broker.app import create_app
from broker.core.pairwise import pairwise_id
from broker.storage.embedded import free_port
from tests.support.browser import chromium, create_person, new_page, sign_in, text_of
from tests.support.environment import LiveServer, make_settings
from tests.support.factories import make_app, make_grant, make_user
from tests.support.htmlforms import form_with
from tests.support.oauth import REDIRECT
from tests.support.signin import http_sign_in
from tests.support.webhook_receiver import Receiver

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
AFTER_LOGOUT = "https://app.example.com/signed-out"
PASSWORD = "alice-password"


@pytest.fixture
def live_server(tmp_path: Path, redis_server: Any, store: Any) -> Iterator[LiveServer]:
    """The app over real HTTP on loopback; the apps' logout receivers are on loopback too, which
    development allows explicitly (BROKER_WEBHOOK_ALLOW_PRIVATE), as for webhooks."""
    port = free_port()
    settings = replace(
        make_settings(tmp_path, redis_server.url),
        issuer=f"http://127.0.0.1:{port}",
        webhook_allow_private=True,
    )
    server = LiveServer(create_app(settings, store), port)
    server.start()
    yield server
    server.stop()


def _id_token(base: str, browser: requests.Session, cid: str, secret: str | None) -> dict[str, Any]:
    """The app's code flow with PKCE in ``browser``; the token response."""
    meta = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    oauth = OAuth2Session(
        cid, secret, scope="openid profile", redirect_uri=REDIRECT, code_challenge_method="S256"
    )
    verifier = generate_token(48)
    url, _ = oauth.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=generate_token(16)
    )
    answer = browser.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:300]
    return dict(
        oauth.fetch_token(
            meta["token_endpoint"], authorization_response=answer.headers["Location"], code_verifier=verifier
        )
    )


def _verified_logout_token(base: str, received: Any, cid: str) -> dict[str, Any]:
    form = parse_qs(received.body.decode())
    assert list(form) == ["logout_token"]
    keys = KeySet.import_key_set(requests.get(f"{base}/oauth/jwks", timeout=10).json())
    token = jwt.decode(form["logout_token"][0], keys, algorithms=["ES256"])
    assert token.header["typ"] == "logout+jwt"
    claims = dict(token.claims)
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": base}, aud={"essential": True, "value": cid}
    ).validate(claims)
    assert claims["events"] == {LOGOUT_EVENT: {}} and "nonce" not in claims and claims["jti"]
    return claims


def test_rp_initiated_and_back_channel_logout(live_server, store) -> None:
    base = live_server.url
    settings = live_server.app.extensions["broker.settings"]
    receiver = Receiver()
    try:
        cid, secret = make_app(
            store,
            settings,
            post_logout_redirect_uris=[AFTER_LOGOUT],
            backchannel_logout_uri=receiver.url,
        )
        uid = make_user(store, "alice", PASSWORD)
        make_grant(store, settings, cid, uid, "openid profile", "user_id nickname avatar")
        meta = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
        assert meta["end_session_endpoint"] == f"{base}/end-session"
        assert meta["backchannel_logout_supported"] is meta["backchannel_logout_session_supported"] is True

        browser = http_sign_in(base, {"password": PASSWORD}, "alice")
        tokens = _id_token(base, browser, cid, secret)
        id_claims = jwt.decode(
            tokens["id_token"], KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
        ).claims
        assert id_claims["sid"] and id_claims["sub"] == pairwise_id(settings.pairwise_key, cid, uid)

        # An unregistered post_logout_redirect_uri is not followed, and a link without a hint signs
        # nobody out.
        no_hint = browser.get(
            f"{meta['end_session_endpoint']}?post_logout_redirect_uri={AFTER_LOGOUT}",
            allow_redirects=False,
            timeout=10,
        )
        assert no_hint.status_code == 303 and no_hint.headers["Location"] == "/"
        assert browser.get(f"{base}/privacy/v1/apps", timeout=10).status_code == 200

        out = browser.get(
            meta["end_session_endpoint"],
            params={
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": AFTER_LOGOUT,
                "state": "s-123",
            },
            allow_redirects=False,
            timeout=10,
        )
        assert out.status_code == 303 and out.headers["Location"] == f"{AFTER_LOGOUT}?state=s-123"
        assert browser.get(f"{base}/privacy/v1/apps", timeout=10).status_code == 401
        claims = _verified_logout_token(base, receiver.wait_for(1)[0], cid)
        assert claims["sid"] == id_claims["sid"] and claims["sub"] == id_claims["sub"]

        # Sign out everywhere (from another browser) and a password change reach the app too.
        phone = http_sign_in(base, {"password": PASSWORD}, "alice")
        phone_sid = jwt.decode(
            _id_token(base, phone, cid, secret)["id_token"], KeySet.import_key_set(meta_keys(base))
        ).claims["sid"]
        laptop = http_sign_in(base, {"password": PASSWORD}, "alice")
        csrf = {"X-CSRFToken": laptop.get(f"{base}/privacy/v1/csrf-token", timeout=10).json()["csrf_token"]}
        changed = laptop.post(
            f"{base}/privacy/v1/password",
            json={"current_password": PASSWORD, "new_password": "another-password"},
            headers=csrf,
            timeout=10,
        )
        assert changed.status_code == 200 and changed.json()["sessions_ended"] == 1
        claims = _verified_logout_token(base, receiver.wait_for(2)[1], cid)
        assert claims["sid"] == phone_sid
        assert phone.get(f"{base}/privacy/v1/apps", timeout=10).status_code == 401

        laptop_sid = jwt.decode(
            _id_token(base, laptop, cid, secret)["id_token"], KeySet.import_key_set(meta_keys(base))
        ).claims["sid"]
        everywhere = laptop.post(f"{base}/privacy/v1/sessions/end-all", headers=csrf, timeout=10)
        assert everywhere.json() == {"ended": 1, "signed_out": True}
        claims = _verified_logout_token(base, receiver.wait_for(3)[2], cid)
        assert claims["sid"] == laptop_sid
    finally:
        receiver.stop()


def meta_keys(base: str) -> Any:
    return requests.get(f"{base}/oauth/jwks", timeout=10).json()


def test_end_session_refuses_another_persons_hint(live_server, store) -> None:
    base = live_server.url
    settings = live_server.app.extensions["broker.settings"]
    cid, secret = make_app(store, settings, post_logout_redirect_uris=[AFTER_LOGOUT])
    for name in ("alice", "bob"):
        uid = make_user(store, name, PASSWORD)
        make_grant(store, settings, cid, uid, "openid profile", "user_id nickname avatar")
    bob = http_sign_in(base, {"password": PASSWORD}, "bob")
    bobs_token = _id_token(base, bob, cid, secret)["id_token"]
    alice = http_sign_in(base, {"password": PASSWORD}, "alice")
    tampered = bobs_token[:-4] + ("AAAA" if not bobs_token.endswith("AAAA") else "BBBB")
    for hint in (bobs_token, tampered, "not-a-jwt"):
        answer = alice.get(
            f"{base}/end-session",
            params={"id_token_hint": hint, "post_logout_redirect_uri": AFTER_LOGOUT},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 303 and urlsplit(answer.headers["Location"]).path in ("/", "/login")
        assert alice.get(f"{base}/privacy/v1/apps", timeout=10).status_code == 200


@pytest.mark.browser
def test_sessions_page_in_a_browser(live_server, store) -> None:
    """Two browsers signed in as one person; the first lists both and signs the second out, then
    signs out everywhere."""
    base = live_server.url
    create_person(store, "alice", "Alice", PASSWORD)
    with chromium() as engine:
        laptop, phone = new_page(engine), new_page(engine)
        sign_in(laptop, base, "alice", PASSWORD, "/privacy/sessions")
        sign_in(phone, base, "alice", PASSWORD, "/privacy")
        laptop.reload()
        rows = laptop.locator("tr[data-session]")
        assert rows.count() == 2
        assert "this browser" in text_of(laptop, "tr[data-session]:has(.current)")
        other = laptop.locator("tr[data-session]:not(:has(.current))")
        assert "127.0.0.1" in other.inner_text()
        other.get_by_role("button", name="Sign out").click()
        laptop.wait_for_url(f"{base}/privacy/sessions")
        assert "That session is signed out." in text_of(laptop, "main")
        assert laptop.locator("tr[data-session]").count() == 1
        phone.goto(f"{base}/privacy")
        assert urlsplit(phone.url).path == "/login"  # the phone's session is gone

        laptop.get_by_role("button", name="Sign out everywhere").click()
        laptop.wait_for_url(lambda url: urlsplit(url).path == "/login")
        laptop.goto(f"{base}/privacy/sessions")
        assert urlsplit(laptop.url).path == "/login"


def test_a_password_reset_by_the_platform_tells_the_apps(live_server, store) -> None:
    base = live_server.url
    settings = live_server.app.extensions["broker.settings"]
    receiver = Receiver()
    try:
        cid, secret = make_app(store, settings, backchannel_logout_uri=receiver.url)
        uid = make_user(store, "alice", PASSWORD)
        make_grant(store, settings, cid, uid, "openid profile", "user_id nickname avatar")
        browser = http_sign_in(base, {"password": PASSWORD}, "alice")
        sid = jwt.decode(
            _id_token(base, browser, cid, secret)["id_token"], KeySet.import_key_set(meta_keys(base))
        )
        reset = requests.patch(
            f"{base}/internal/v1/users/{uid}",
            json={"password": "reset-by-the-platform"},
            headers={"Authorization": f"Bearer {settings.platform_api_key}"},
            timeout=10,
        )
        assert reset.status_code == 200
        assert browser.get(f"{base}/privacy/v1/apps", timeout=10).status_code == 401
        claims = _verified_logout_token(base, receiver.wait_for(1)[0], cid)
        assert claims["sid"] == sid.claims["sid"]
    finally:
        receiver.stop()


def test_signing_out_on_the_home_page_tells_the_apps(live_server, store) -> None:
    base = live_server.url
    settings = live_server.app.extensions["broker.settings"]
    receiver = Receiver()
    try:
        cid, secret = make_app(store, settings, backchannel_logout_uri=receiver.url)
        uid = make_user(store, "alice", PASSWORD)
        make_grant(store, settings, cid, uid, "openid profile", "user_id nickname avatar")
        browser = http_sign_in(base, {"password": PASSWORD}, "alice")
        sid = jwt.decode(
            _id_token(base, browser, cid, secret)["id_token"], KeySet.import_key_set(meta_keys(base))
        )
        home = browser.get(f"{base}/", timeout=10)
        form = form_with(home.text, home.url, field_name="csrf_token")
        out = browser.post(form.action, data=form.values(), allow_redirects=False, timeout=10)
        assert out.status_code == 303 and out.headers["Location"] == "/login"
        claims = _verified_logout_token(base, receiver.wait_for(1)[0], cid)
        assert claims["sid"] == sid.claims["sid"]
    finally:
        receiver.stop()


def test_back_channel_logout_goes_only_to_public_addresses(
    tmp_path: Path, redis_server: Any, store: Any
) -> None:
    """Like webhooks: an internal address is refused when the app saves it, and a logout token is
    never sent to one (loopback here, without the development setting)."""
    from broker.errors import ValidationFailed
    from broker.events import egress
    from broker.web.interactions import logout

    settings = make_settings(tmp_path, redis_server.url)
    for uri in (
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/logout",
        "https://[::1]/logout",
    ):
        with pytest.raises(ValidationFailed) as refused:
            make_app(store, settings, backchannel_logout_uri=uri)
        assert refused.value.fields is not None
        assert egress.REFUSED in str(refused.value.fields["backchannel_logout_uri"])
    receiver = Receiver()
    try:
        session = egress.guard(requests.Session(), allow_private=False)
        logout._deliver(session, [("app_x", receiver.url, "a.logout.token")], 5)
        assert receiver.requests == []
    finally:
        receiver.stop()
