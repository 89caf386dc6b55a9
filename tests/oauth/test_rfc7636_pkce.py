"""RFC 7636 (PKCE): S256 only, required of public clients, and the verifier checked at the token endpoint."""

from __future__ import annotations

from tests.support.environment import ISSUER
from tests.support.flows import setup_authorize
from tests.support.oauth import REDIRECT, authorize, authorize_params, get_code, pkce_pair, query


def test_plain_pkce_is_rejected(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    for method in ("plain", None):
        params = authorize_params(cid, None, code_challenge="a" * 43)
        if method:
            params["code_challenge_method"] = method
        q = query(authorize(client, params).headers["Location"])
        assert q["error"] == "invalid_request", method
        assert q["iss"] == ISSUER


def test_public_client_requires_pkce(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings, client_type="public")
    q = query(authorize(client, authorize_params(cid, None)).headers["Location"])
    assert q["error"] == "invalid_request"
    assert "PKCE" in q["error_description"]


def test_wrong_verifier_is_invalid_grant(flow):
    form = flow["code_form"]()
    form["code_verifier"] = pkce_pair()[0]
    resp = flow["token"](form)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_verifier_without_prior_challenge_is_invalid_grant(flow):
    code = get_code(flow["client"], flow["cid"], None)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": pkce_pair()[0],
    }
    resp = flow["token"](form)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"
