"""The authorization endpoint: RFC 6749 4.1, OIDC prompt/max_age, consent.

PKCE (RFC 7636) is in test_rfc7636_pkce.py, the ``iss`` parameter (RFC 9207) in test_rfc9207_iss.py."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

from tests.support.environment import ISSUER
from tests.support.factories import make_app, make_grant
from tests.support.flows import setup_authorize
from tests.support.oauth import REDIRECT, authorize, authorize_params, pkce_pair, query
from tests.support.signin import session_sign_in


def test_code_is_stored_hashed_with_ttl(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    code = query(authorize(client, authorize_params(cid, pkce_pair()[1])).headers["Location"])["code"]
    found = list(store.redis.scan_iter(match="*:code:*"))
    assert len(found) == 1
    assert code not in found[0]
    assert 0 < store.redis.ttl(found[0]) <= settings.code_ttl


def test_unknown_client_is_an_html_page_not_a_redirect(client, store, settings):
    setup_authorize(client, store, settings)
    resp = authorize(client, authorize_params("app_0000000000000000", pkce_pair()[1]))
    assert resp.status_code == 400
    assert resp.mimetype == "text/html"
    assert "Location" not in resp.headers


def test_unregistered_redirect_uri_is_an_html_page(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    for uri in ("https://evil.example/cb", REDIRECT + "/", REDIRECT + "?x=1", "HTTPS://app.example.com/cb"):
        resp = authorize(client, authorize_params(cid, pkce_pair()[1], redirect_uri=uri))
        assert resp.status_code == 400, uri
        assert resp.mimetype == "text/html"
        assert "Location" not in resp.headers


def test_duplicated_redirect_uri_or_client_id_is_an_html_page(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    qs = f"response_type=code&client_id={cid}&redirect_uri={REDIRECT}&redirect_uri={REDIRECT}"
    resp = client.get("/oauth/authorize?" + qs)
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    resp = client.get(f"/oauth/authorize?response_type=code&client_id={cid}&client_id={cid}")
    assert resp.status_code == 400
    assert "Location" not in resp.headers


def test_duplicated_parameter_is_invalid_request(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    qs = f"response_type=code&client_id={cid}&redirect_uri={REDIRECT}&scope=openid&scope=profile&state=s"
    resp = client.get("/oauth/authorize?" + qs)
    assert resp.status_code == 302
    q = query(resp.headers["Location"])
    assert q["error"] == "invalid_request"
    assert q["state"] == "s"
    assert q["iss"] == ISSUER


def test_oversized_parameter_is_invalid_request(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    resp = authorize(client, authorize_params(cid, pkce_pair()[1], nonce="n" * 3000))
    q = query(resp.headers["Location"])
    assert q["error"] == "invalid_request"
    assert q["iss"] == ISSUER


def test_org_scope_or_only_unknown_scopes_is_invalid_scope_naming_them(client, store, settings):
    """Unknown scope values are ignored (OIDC Core 3.1.2.1) unless nothing is left; a known scope the
    code flow cannot grant (an organization's) is refused. Either way the description names them.
    (Before issue 16 any unknown value was refused, with a description that named nothing.)"""
    cid, _s, _u = setup_authorize(
        client, store, settings, registered=False, kind="org_app", scopes="openid profile org.members.read"
    )
    cases = {
        "org.members.read": "org.members.read",
        "openid org.members.read email": "org.members.read",
        "email nope": "Unknown scope: email, nope.",
        "offline_access": "offline_access alone",
    }
    for scope, named in cases.items():
        q = query(authorize(client, authorize_params(cid, pkce_pair()[1], scope=scope)).headers["Location"])
        assert q["error"] == "invalid_scope", scope
        assert named in q["error_description"], q
        assert q["iss"] == ISSUER


def test_a_scope_value_that_is_not_a_scope_token_is_refused_without_echoing_it(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    q = query(
        authorize(client, authorize_params(cid, pkce_pair()[1], scope='openid pr"ofile')).headers["Location"]
    )
    assert q["error"] == "invalid_scope"
    assert '"' not in q["error_description"]


def test_scope_the_app_did_not_register_is_invalid_scope(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings, scopes="openid")
    q = query(
        authorize(client, authorize_params(cid, pkce_pair()[1], scope="openid profile")).headers["Location"]
    )
    assert q["error"] == "invalid_scope"
    assert q["error_description"].startswith("This app may not ask for: profile ")


def test_no_session_redirects_to_login_with_full_path(client, store, settings):
    cid, _s, _u = (*make_app(store, settings), None)
    resp = authorize(client, authorize_params(cid, pkce_pair()[1]))
    assert resp.status_code == 302
    loc = urlsplit(resp.headers["Location"])
    assert loc.path == "/login"
    nxt = parse_qs(loc.query)["next"][0]
    assert nxt.startswith("/oauth/authorize?")
    assert f"client_id={cid}" in nxt
    assert "force" not in parse_qs(loc.query)


def test_prompt_none_without_session_is_login_required(client, store, settings):
    cid, _ = make_app(store, settings)
    q = query(authorize(client, authorize_params(cid, pkce_pair()[1], prompt="none")).headers["Location"])
    assert q["error"] == "login_required"
    assert q["state"] == "st-123"
    assert q["iss"] == ISSUER


def test_prompt_none_without_grant_is_consent_required(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings, grant=False)
    q = query(authorize(client, authorize_params(cid, pkce_pair()[1], prompt="none")).headers["Location"])
    assert q["error"] == "consent_required"
    assert q["iss"] == ISSUER


def test_prompt_login_forces_login_once_then_issues_code(client, store, settings):
    cid, _s, _uid = setup_authorize(client, store, settings)
    params = authorize_params(cid, pkce_pair()[1], prompt="login")
    resp = authorize(client, params)
    loc = urlsplit(resp.headers["Location"])
    assert loc.path == "/login"
    assert parse_qs(loc.query)["force"] == ["1"]
    # Same request again without a fresh login: still forced.
    assert urlsplit(authorize(client, params).headers["Location"]).path == "/login"
    # The login page signs in again (fresh auth_time) and returns to the same request: no loop.
    with client.session_transaction() as sess:
        sess["auth_time"] = int(time.time()) + 1
    resp = authorize(client, params)
    assert "code" in query(resp.headers["Location"])


def test_max_age_exceeded_forces_login(client, store, settings):
    cid, _s, uid = setup_authorize(client, store, settings)
    session_sign_in(client, uid, auth_time=int(time.time()) - 600)
    params = authorize_params(cid, pkce_pair()[1], max_age="60")
    loc = urlsplit(authorize(client, params).headers["Location"])
    assert loc.path == "/login"
    assert parse_qs(loc.query)["force"] == ["1"]
    session_sign_in(client, uid)
    assert "code" in query(authorize(client, params).headers["Location"])


def test_invalid_max_age_is_invalid_request(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    q = query(authorize(client, authorize_params(cid, pkce_pair()[1], max_age="soon")).headers["Location"])
    assert q["error"] == "invalid_request"


def _consent_redirect(client, params):
    resp = authorize(client, params)
    assert resp.status_code == 302
    path = urlsplit(resp.headers["Location"]).path
    assert path.startswith("/consent/")
    return path.rsplit("/", 1)[1]


def _finish_interaction(client, iid, result):
    with client.session_transaction() as sess:
        record = sess["interactions"][iid]
        record["result"] = result
        sess["interactions"] = {**sess["interactions"], iid: record}
        return record


def test_no_grant_starts_consent_interaction(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings, grant=False)
    params = authorize_params(cid, pkce_pair()[1])
    iid = _consent_redirect(client, params)
    with client.session_transaction() as sess:
        record = sess["interactions"][iid]
    assert record["client_id"] == cid
    assert record["scopes"] == ["openid", "profile"]
    assert record["return_to"].startswith("/oauth/authorize?")
    assert record["result"] is None


def test_consent_approved_issues_code_and_interaction_is_single_use(client, store, settings):
    cid, _s, uid = setup_authorize(client, store, settings, grant=False)
    params = authorize_params(cid, pkce_pair()[1])
    iid = _consent_redirect(client, params)
    record = _finish_interaction(client, iid, "approved")
    make_grant(
        store, settings, cid, uid, "openid profile", "user_id nickname avatar"
    )  # what the consent page writes
    resp = client.get(record["return_to"] + f"&interaction={iid}")
    q = query(resp.headers["Location"])
    assert "code" in q
    assert q["iss"] == ISSUER
    with client.session_transaction() as sess:
        assert iid not in sess.get("interactions", {})


def test_consent_denied_is_access_denied_with_state_and_iss(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings, grant=False)
    iid = _consent_redirect(client, authorize_params(cid, pkce_pair()[1]))
    record = _finish_interaction(client, iid, "denied")
    resp = client.get(record["return_to"] + f"&interaction={iid}")
    q = query(resp.headers["Location"])
    assert q["error"] == "access_denied"
    assert q["state"] == "st-123"
    assert q["iss"] == ISSUER


def test_prompt_consent_asks_even_with_grant_and_approval_issues_code(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    params = authorize_params(cid, pkce_pair()[1], prompt="consent")
    iid = _consent_redirect(client, params)
    record = _finish_interaction(client, iid, "approved")
    q = query(client.get(record["return_to"] + f"&interaction={iid}").headers["Location"])
    assert "code" in q


def test_grant_not_covering_scopes_asks_consent(client, store, settings):
    cid, _s, uid = setup_authorize(client, store, settings, grant=False)
    make_grant(store, settings, cid, uid, "openid", "user_id")
    _consent_redirect(client, authorize_params(cid, pkce_pair()[1]))


def test_interaction_of_another_request_is_ignored(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings, grant=False)
    iid = _consent_redirect(client, authorize_params(cid, pkce_pair()[1]))
    _finish_interaction(client, iid, "approved")
    other = authorize_params(cid, pkce_pair()[1], state="other", interaction=iid)
    resp = authorize(client, other)
    assert urlsplit(resp.headers["Location"]).path.startswith("/consent/")


def test_suspended_app_gets_html_error(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings, status="suspended")
    resp = authorize(client, authorize_params(cid, pkce_pair()[1]))
    assert resp.status_code == 400
    assert "Location" not in resp.headers


def test_loopback_http_redirect_exact_match(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings, redirect_uris=["http://127.0.0.1:5173/cb"])
    resp = authorize(client, authorize_params(cid, pkce_pair()[1], redirect_uri="http://127.0.0.1:5173/cb"))
    assert "code" in query(resp.headers["Location"])
    resp = authorize(client, authorize_params(cid, pkce_pair()[1], redirect_uri="http://127.0.0.1:5174/cb"))
    assert resp.status_code == 400


def test_request_objects_and_other_response_modes_are_refused(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    cases = {
        "request": ("eyJ.x.y", "request_not_supported"),
        "request_uri": ("https://app.example.com/r", "request_uri_not_supported"),
        "response_mode": ("fragment", "invalid_request"),
    }
    for name, (value, error) in cases.items():
        q = query(
            authorize(client, authorize_params(cid, pkce_pair()[1], **{name: value})).headers["Location"]
        )
        assert q["error"] == error, name
        assert q["iss"] == ISSUER


def test_malformed_client_id_is_an_html_page(client, store, settings):
    setup_authorize(client, store, settings)
    for bad in ("app_{x}", "x" * 5000, ""):
        resp = authorize(client, authorize_params(bad, pkce_pair()[1]))
        assert resp.status_code == 400
        assert "Location" not in resp.headers


def test_redirect_uri_with_fragment_is_never_used(client, store, settings):
    cid, _s, _u = setup_authorize(
        client, store, settings, registered=False, redirect_uris=["https://app.example.com/cb#frag"]
    )
    resp = authorize(
        client, authorize_params(cid, pkce_pair()[1], redirect_uri="https://app.example.com/cb#frag")
    )
    assert resp.status_code == 400
    assert "Location" not in resp.headers


def test_prompt_none_with_session_and_grant_issues_code(client, store, settings):
    cid, _s, _u = setup_authorize(client, store, settings)
    q = query(authorize(client, authorize_params(cid, pkce_pair()[1], prompt="none")).headers["Location"])
    assert "code" in q
    assert q["iss"] == ISSUER
