"""RFC 9207: the authorization server's ``iss`` in every authorization response, success or error."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.support.environment import ISSUER
from tests.support.flows import setup_authorize
from tests.support.oauth import REDIRECT, authorize, authorize_params, pkce_pair, query


def test_success_carries_code_state_and_iss_rfc9207(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    resp = authorize(client, authorize_params(cid, pkce_pair()[1]))
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith(REDIRECT + "?")
    q = query(resp.headers["Location"])
    assert q["code"].startswith(f"brk_ac_{cid}.")
    assert q["state"] == "st-123"
    assert q["iss"] == ISSUER
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_unsupported_response_type_redirects_with_iss(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    resp = authorize(client, authorize_params(cid, pkce_pair()[1], response_type="token"))
    assert resp.status_code == 302
    q = query(resp.headers["Location"])
    assert q["error"] == "unsupported_response_type"
    assert q["iss"] == ISSUER
    assert q["state"] == "st-123"


def test_success_location_has_exactly_one_iss(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    loc = authorize(client, authorize_params(cid, pkce_pair()[1])).headers["Location"]
    assert parse_qs(urlsplit(loc).query)["iss"] == [ISSUER]
