"""End to end over real HTTP with a standard client library (Authlib's requests OAuth2Session)."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from broker.app import create_app
from broker.core.pairwise import pairwise_id
from broker.directory import sessions
from broker.storage.embedded import free_port
from tests.support.environment import LiveServer, make_settings
from tests.support.factories import make_app, make_grant, make_user
from tests.support.oauth import REDIRECT, pkce_pair
from tests.support.tokens import rotated_refresh_keys, update


def _browser(live_server, uid: str) -> requests.Session:
    """A browser with a signed-in session cookie: a session stored as the login page stores one."""
    app = live_server.app
    cookie = sessions.create(
        app.extensions["broker.store"],
        app.extensions["broker.settings"],
        uid,
        {"uid": uid, "auth_time": int(time.time())},
    ).cookie
    browser = requests.Session()
    browser.cookies.set(app.config["SESSION_COOKIE_NAME"], cookie, domain="127.0.0.1", path="/")
    return browser


def _setup(live_server, store):
    settings = live_server.app.extensions["broker.settings"]
    cid, secret = make_app(store, settings)
    uid = make_user(store, "alice", "pw")
    make_grant(store, settings, cid, uid, "openid profile", "user_id nickname avatar")
    return settings, cid, secret, uid


def test_code_pkce_id_token_refresh_reuse_and_revocation(live_server, store):
    settings, cid, secret, uid = _setup(live_server, store)
    base = live_server.url
    meta = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    assert meta["issuer"] == base

    oauth = OAuth2Session(
        cid,
        secret,
        scope="openid profile",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, state = oauth.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    resp = _browser(live_server, uid).get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    location = resp.headers["Location"]
    q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert q["state"] == state
    assert q["iss"] == meta["issuer"]  # RFC 9207 mix-up defence, checked by the client

    token = oauth.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "openid profile"

    # id_token: ES256 with kid, verified against the published JWKS.
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(token["id_token"], keys, algorithms=["ES256"])
    assert decoded.header["alg"] == "ES256"
    assert decoded.header["kid"] in {k.kid for k in keys.keys}
    claims = decoded.claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": base},
        aud={"essential": True, "value": cid},
        nonce={"essential": True, "value": nonce},
    ).validate(claims)
    assert claims["sub"] == pairwise_id(settings.pairwise_key, cid, uid)
    assert claims["exp"] > claims["iat"]
    assert isinstance(claims["auth_time"], int)
    digest = hashlib.sha256(token["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()

    # Refresh rotates. Presenting the old refresh token again within the grace window (default 10 s)
    # answers the same new pair; after it, the reuse revokes the chain (RFC 9700 4.14.2).
    old_refresh = token["refresh_token"]
    new = oauth.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
    assert new["refresh_token"] != old_refresh
    retry = requests.post(
        meta["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": old_refresh},
        auth=(cid, secret),
        timeout=10,
    ).json()
    assert (retry["access_token"], retry["refresh_token"]) == (new["access_token"], new["refresh_token"])
    [rotated] = rotated_refresh_keys(store)
    update(store, rotated, rotated_at=int(time.time()) - settings.refresh_grace_seconds - 1)
    reuse = requests.post(
        meta["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": old_refresh},
        auth=(cid, secret),
        timeout=10,
    )
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    intro = requests.post(
        meta["introspection_endpoint"], data={"token": new["access_token"]}, auth=(cid, secret), timeout=10
    )
    assert intro.json() == {"active": False}


def test_revocation_over_http(live_server, store):
    _settings, cid, secret, uid = _setup(live_server, store)
    base = live_server.url
    oauth = OAuth2Session(
        cid, secret, scope="openid profile", redirect_uri=REDIRECT, code_challenge_method="S256"
    )
    verifier = generate_token(48)
    url, _state = oauth.create_authorization_url(f"{base}/oauth/authorize", code_verifier=verifier)
    location = _browser(live_server, uid).get(url, allow_redirects=False, timeout=10).headers["Location"]
    token = oauth.fetch_token(f"{base}/oauth/token", authorization_response=location, code_verifier=verifier)
    resp = oauth.revoke_token(
        f"{base}/oauth/revoke", token=token["access_token"], token_type_hint="access_token"
    )
    assert resp.status_code == 200
    intro = requests.post(
        f"{base}/oauth/introspect", data={"token": token["access_token"]}, auth=(cid, secret), timeout=10
    )
    assert intro.json() == {"active": False}
    with pytest.raises(OAuthError) as exc:
        oauth.fetch_token(f"{base}/oauth/token", authorization_response=location, code_verifier=verifier)
    assert exc.value.error == "invalid_grant"


def test_fifty_concurrent_redemptions_of_one_code_give_exactly_one_token(live_server, store):
    _settings, cid, secret, uid = _setup(live_server, store)
    base = live_server.url
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": cid,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s",
    }
    resp = _browser(live_server, uid).get(
        f"{base}/oauth/authorize", params=params, allow_redirects=False, timeout=10
    )
    code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }

    n = 50
    barrier = threading.Barrier(n)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def redeem() -> None:
        with requests.Session() as s:
            barrier.wait(timeout=30)
            r = s.post(f"{base}/oauth/token", data=form, auth=(cid, secret), timeout=30)
            with lock:
                results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=redeem) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == n
    ok = [body for status, body in results if status == 200]
    failed = [body for status, body in results if status != 200]
    assert len(ok) == 1
    assert len(failed) == n - 1
    assert all(body["error"] == "invalid_grant" for body in failed)
    # The replays revoke the tokens the one success received (RFC 6749 4.1.2).
    intro = requests.post(
        f"{base}/oauth/introspect", data={"token": ok[0]["access_token"]}, auth=(cid, secret), timeout=10
    )
    assert intro.json() == {"active": False}


@pytest.fixture
def live_server_grace_zero(tmp_path, redis_server, store):
    """The app on loopback with BROKER_REFRESH_GRACE_SECONDS=0 (the default before issue 16)."""
    port = free_port()
    settings = make_settings(tmp_path, redis_server.url, refresh_grace_seconds=0)
    server = LiveServer(create_app(replace(settings, issuer=f"http://127.0.0.1:{port}"), store), port)
    server.start()
    yield server
    server.stop()


def _concurrent_refreshes(live_server, store, n: int) -> tuple[str, str, list[tuple[int, dict]]]:
    """One code-flow token, then ``n`` refreshes with its refresh token released at once."""
    _settings, cid, secret, uid = _setup(live_server, store)
    base = live_server.url
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": cid,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    resp = _browser(live_server, uid).get(
        f"{base}/oauth/authorize", params=params, allow_redirects=False, timeout=10
    )
    code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    token = requests.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=(cid, secret),
        timeout=10,
    ).json()
    barrier = threading.Barrier(n)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def refresh() -> None:
        barrier.wait(timeout=30)
        r = requests.post(
            f"{base}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
            auth=(cid, secret),
            timeout=30,
        )
        with lock:
            results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=refresh) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return cid, secret, results


def test_concurrent_refreshes_with_grace_zero_one_wins_then_the_grant_is_revoked(
    live_server_grace_zero, store
):
    """Policy with BROKER_REFRESH_GRACE_SECONDS=0: the first rotation wins; every other concurrent use
    of the same refresh token is reuse, answers invalid_grant and revokes the grant."""
    n = 10
    cid, secret, results = _concurrent_refreshes(live_server_grace_zero, store, n)
    base = live_server_grace_zero.url
    ok = [body for status, body in results if status == 200]
    assert len(results) == n
    assert len(ok) == 1
    assert all(body["error"] == "invalid_grant" for status, body in results if status != 200)
    intro = requests.post(
        f"{base}/oauth/introspect", data={"token": ok[0]["access_token"]}, auth=(cid, secret), timeout=10
    )
    assert intro.json() == {"active": False}


def test_concurrent_refreshes_within_the_default_grace_all_get_the_same_pair(live_server, store):
    """Default policy (BROKER_REFRESH_GRACE_SECONDS=10): ten tabs refreshing with the same token at
    once all receive the one pair the first rotation issued, and it stays valid."""
    n = 10
    cid, secret, results = _concurrent_refreshes(live_server, store, n)
    assert len(results) == n
    assert all(status == 200 for status, _ in results), results
    pairs = {(body["access_token"], body["refresh_token"]) for _, body in results}
    assert len(pairs) == 1
    access, refresh = pairs.pop()
    for token in (access, refresh):
        intro = requests.post(
            f"{live_server.url}/oauth/introspect", data={"token": token}, auth=(cid, secret), timeout=10
        )
        assert intro.json()["active"] is True
