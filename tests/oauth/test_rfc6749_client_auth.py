"""Client authentication at the token endpoint (RFC 6749 2.3, 3.2.1)."""

from __future__ import annotations

import base64
import time

from tests.support.client import basic
from tests.support.factories import make_app, raw_secret
from tests.support.flows import setup_authorize
from tests.support.oauth import code_form


def _code_setup(client, store, settings, **app):
    cid, secret, _uid = setup_authorize(client, store, settings, **app)
    return cid, secret, code_form(client, cid)


def test_client_secret_basic_works(client, store, settings):
    cid, secret, form = _code_setup(client, store, settings)
    resp = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    assert resp.status_code == 200
    assert resp.get_json()["token_type"] == "Bearer"


def test_client_secret_post_works(client, store, settings):
    cid, secret, form = _code_setup(client, store, settings)
    resp = client.post("/oauth/token", data={**form, "client_id": cid, "client_secret": secret})
    assert resp.status_code == 200


def test_wrong_secret_is_invalid_client_401_with_www_authenticate(client, store, settings):
    cid, _secret, form = _code_setup(client, store, settings)
    resp = client.post("/oauth/token", data=form, headers=basic(cid, "brk_cs_wrong"))
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert resp.headers["Cache-Control"] == "no-store"


def test_wrong_secret_in_body_is_also_401(client, store, settings):
    cid, _secret, form = _code_setup(client, store, settings)
    resp = client.post("/oauth/token", data={**form, "client_id": cid, "client_secret": "nope"})
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in resp.headers


def test_expired_rotated_secret_is_refused_and_live_one_accepted(client, store, settings):
    cid, _secret, form = _code_setup(client, store, settings)
    old = raw_secret(store, settings, cid, expires=int(time.time()) - 10)
    resp = client.post("/oauth/token", data=form, headers=basic(cid, old))
    assert resp.status_code == 401
    overlapping = raw_secret(store, settings, cid, expires=int(time.time()) + 3600)
    resp = client.post("/oauth/token", data=form, headers=basic(cid, overlapping))
    assert resp.status_code == 200


def test_credentials_in_header_and_body_is_invalid_request(client, store, settings):
    cid, secret, form = _code_setup(client, store, settings)
    resp = client.post(
        "/oauth/token", data={**form, "client_id": cid, "client_secret": secret}, headers=basic(cid, secret)
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_request"


def test_malformed_basic_header_is_invalid_client(client, store, settings):
    _cid, _secret, form = _code_setup(client, store, settings)
    for header in ("Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer abc"):
        resp = client.post("/oauth/token", data=form, headers={"Authorization": header})
        assert resp.status_code == 401, header
        assert resp.get_json()["error"] == "invalid_client"
        assert "WWW-Authenticate" in resp.headers


def test_confidential_client_cannot_use_none(client, store, settings):
    cid, _secret, form = _code_setup(client, store, settings)
    resp = client.post("/oauth/token", data={**form, "client_id": cid})
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"


def test_public_client_uses_none_with_pkce(client, store, settings):
    cid, secret, form = _code_setup(client, store, settings, client_type="public")
    assert secret is None
    resp = client.post("/oauth/token", data={**form, "client_id": cid})
    assert resp.status_code == 200
    assert resp.headers["Pragma"] == "no-cache"


def test_public_client_without_verifier_is_invalid_request(client, store, settings):
    cid, _secret, form = _code_setup(client, store, settings, client_type="public")
    form.pop("code_verifier")
    resp = client.post("/oauth/token", data={**form, "client_id": cid})
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_request"


def test_suspended_app_is_invalid_client(client, store, settings):
    cid, secret, form = _code_setup(client, store, settings)
    from broker.storage import keys

    store.redis.hset(keys.app(cid), "status", "suspended")
    resp = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"


def test_client_secret_stored_only_hashed(store, settings):
    cid, secret = make_app(store, settings)
    from broker.storage import keys

    dump = " ".join(store.redis.hkeys(keys.app_secrets(cid))) + str(store.redis.hgetall(keys.app(cid)))
    assert secret not in dump
