"""What standard OAuth/OIDC clients expect by default (issue 16, OIDC and OAuth details).

Unknown scope values ignored (OIDC Core 3.1.2.1) and the granted scope returned; ``offline_access``
accepted; 403 ``insufficient_scope`` for a valid token of the wrong kind (RFC 6750 3.1); the token in
a userinfo POST body (RFC 6750 2.2); error descriptions in plain words; a public client's HTTP Basic
with an empty password taken as ``none``.
"""

from __future__ import annotations

import base64
import re

from tests.support.client import basic, bearer
from tests.support.factories import (
    make_org,
    make_token,
    make_user,
    raw_app,
    raw_grant,
    raw_installation,
    raw_secret,
)
from tests.support.flows import setup_authorize
from tests.support.ledger import journal_records
from tests.support.oauth import REDIRECT, authorize, authorize_params, code_form, pkce_pair, query

ORG = "org_aaaaaaaaaaaaaaaa"


def _no_python_repr(text: str) -> None:
    assert not re.search(r"[\[\]{}]|\(\'|^'|\\x", text), text


# --- scopes -----------------------------------------------------------------------------------


def test_unknown_scopes_are_ignored_and_the_token_response_names_what_was_granted(client, store, settings):
    cid, secret, _uid = setup_authorize(client, store, settings)
    form = code_form(client, cid, scope="openid profile email offline_access address")
    resp = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["scope"] == "openid profile"
    assert body["refresh_token"]  # offline_access or not, the code flow always gives a refresh token
    assert "id_token" in body
    intro = client.post("/oauth/introspect", data={"token": body["access_token"]}, headers=basic(cid, secret))
    assert intro.get_json()["scope"] == "openid profile"


def test_unknown_scopes_on_refresh_are_ignored_and_wider_ones_named(client, store, settings):
    cid, secret, _uid = setup_authorize(client, store, settings)
    body = client.post("/oauth/token", data=code_form(client, cid), headers=basic(cid, secret)).get_json()
    narrow = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "scope": "openid email"},
        headers=basic(cid, secret),
    )
    assert narrow.status_code == 200
    assert narrow.get_json()["scope"] == "openid"
    # RFC 6749 6: the ceiling is what the resource owner granted, the person's grant (openid
    # profile here), so a narrowed token may widen again within it...
    wide = client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": narrow.get_json()["refresh_token"],
            "scope": "openid profile",
        },
        headers=basic(cid, secret),
    )
    assert wide.status_code == 200 and wide.get_json()["scope"] == "openid profile"
    # ... but never beyond it
    beyond = client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": wide.get_json()["refresh_token"],
            "scope": "openid contact",
        },
        headers=basic(cid, secret),
    )
    assert beyond.get_json() == {
        "error": "invalid_scope",
        "error_description": "The refresh token was not granted: contact.",
    }
    nothing_known = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": wide.get_json()["refresh_token"],
              "scope": "email phone"},
        headers=basic(cid, secret),
    )  # fmt: skip
    assert nothing_known.get_json()["error"] == "invalid_scope"
    assert nothing_known.get_json()["error_description"] == "Unknown scope: email, phone."


def test_client_credentials_ignores_unknown_scopes_and_names_ungranted_ones(client, store, settings):
    cid = raw_app(store, kind="org_app", scopes="openid org.members.read", redirect_uris=[REDIRECT])
    secret = raw_secret(store, settings, cid, None)
    raw_installation(store, cid, ORG, "org.members.read")
    ok = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": ORG, "scope": "org.members.read email"},
        headers=basic(cid, secret),
    )
    assert ok.status_code == 200
    assert ok.get_json()["scope"] == "org.members.read"
    # Person scopes mean nothing to an organization token: ignored (pyoidc sends openid by default).
    with_openid = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": ORG, "scope": "openid org.members.read"},
        headers=basic(cid, secret),
    )
    assert with_openid.get_json()["scope"] == "org.members.read"
    only_person = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": ORG, "scope": "openid profile"},
        headers=basic(cid, secret),
    )
    assert only_person.get_json()["scope"] == "org.members.read"  # the installation's scopes
    only_unknown = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": ORG, "scope": "email phone"},
        headers=basic(cid, secret),
    )
    assert only_unknown.status_code == 400
    assert only_unknown.get_json() == {
        "error": "invalid_scope",
        "error_description": "Unknown scope: email, phone.",
    }
    other_org = "org_bbbbbbbbbbbbbbbb"
    raw_installation(store, cid, other_org, "")
    refused = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": other_org, "scope": "org.members.read"},
        headers=basic(cid, secret),
    )
    assert refused.status_code == 400
    assert refused.get_json()["error_description"] == "The organization did not grant: org.members.read."


def test_consent_is_asked_for_the_known_scopes_only(client, store, settings):
    cid, _secret, _uid = setup_authorize(client, store, settings, grant=False)
    resp = authorize(
        client, authorize_params(cid, pkce_pair()[1], scope="openid email profile offline_access")
    )
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/consent/")
    iid = resp.headers["Location"].rsplit("/", 1)[1]
    with client.session_transaction() as sess:  # what the consent page will ask the person for
        assert sess["interactions"][iid]["scopes"] == ["openid", "profile"]
    assert client.get(resp.headers["Location"]).status_code == 200


# --- the wrong kind of token ------------------------------------------------------------------


def _person_and_org(store, settings):
    uid = make_user(store, nickname="Alice")
    cid = raw_app(store)
    gid = raw_grant(store, cid, uid, "openid profile", "user_id nickname")
    person_token = make_token(store, settings, cid, kind="grant", subject=uid, grant_id=gid,
                              scopes="openid profile")  # fmt: skip
    oid = make_org(store, [uid])
    org_app = raw_app(store, kind="org_app", scopes="org.members.read")
    iid = raw_installation(store, org_app, oid, "org.members.read")
    org_token = make_token(store, settings, org_app, kind="installation", subject=oid, grant_id=iid,
                           scopes="org.members.read")  # fmt: skip
    return cid, person_token, oid, org_app, org_token


def test_org_token_on_a_persons_endpoint_is_403_insufficient_scope(client, store, settings):
    _cid, _pt, _oid, org_app, org_token = _person_and_org(store, settings)
    for method, path in (("GET", "/v1/me"), ("GET", "/oauth/userinfo"), ("POST", "/oauth/userinfo")):
        resp = client.open(path, method=method, headers=bearer(org_token))
        assert resp.status_code == 403, path
        assert resp.get_json()["error"] == "insufficient_scope"
        assert resp.headers["WWW-Authenticate"] == (
            'Bearer realm="broker", error="insufficient_scope", scope="openid", error_description="This '
            'endpoint needs a token issued to a person (authorization code flow)"'
        )
    assert journal_records(store, org_app) == []


def test_person_token_on_the_members_api_is_403_naming_the_scope(client, store, settings):
    cid, person_token, oid, _org_app, _ot = _person_and_org(store, settings)
    for path in (f"/v1/orgs/{oid}/members", f"/v1/orgs/{oid}/members/someone"):
        resp = client.get(path, headers=bearer(person_token))
        assert resp.status_code == 403, path
        body = resp.get_json()
        assert body["error"] == "insufficient_scope"
        assert body["scope"] == "org.members.read"
        assert (
            body["grant_url"] == f"{settings.issuer}/admin/orgs/{oid}/apps/{cid}?add_scope=org.members.read"
        )
        challenge = resp.headers["WWW-Authenticate"]
        assert challenge.startswith(
            'Bearer realm="broker", error="insufficient_scope", scope="org.members.read"'
        )
        assert "organization token" in challenge
    assert journal_records(store, cid) == []


def test_revoked_or_unknown_tokens_of_either_kind_stay_401(client, store, settings):
    _cid, person_token, oid, org_app, org_token = _person_and_org(store, settings)
    from broker.storage import keys

    store.redis.delete(keys.installation(org_app, oid))
    for path in ("/v1/me", f"/v1/orgs/{oid}/members"):
        resp = client.get(path, headers=bearer(org_token))
        assert resp.status_code == 401, path
        assert resp.get_json()["error"] == "invalid_token"
    bogus = person_token[:-4] + "abcd"
    resp = client.get(f"/v1/orgs/{oid}/members", headers=bearer(bogus))
    assert resp.status_code == 401


# --- userinfo with the token in a POST body ---------------------------------------------------


def test_userinfo_accepts_the_token_in_a_form_body(client, store, settings):
    cid, person_token, _oid, _oa, _ot = _person_and_org(store, settings)
    resp = client.post("/oauth/userinfo", data={"access_token": person_token})
    assert resp.status_code == 200
    assert resp.get_json()["nickname"] == "Alice"
    assert journal_records(store, cid)[-1]["endpoint"] == "userinfo"


def test_userinfo_refuses_the_token_two_ways_in_the_query_or_twice(client, store, settings):
    _cid, person_token, _oid, _oa, _ot = _person_and_org(store, settings)
    both = client.post("/oauth/userinfo", data={"access_token": person_token}, headers=bearer(person_token))
    assert both.status_code == 400
    assert both.get_json()["error"] == "invalid_request"
    assert both.headers["WWW-Authenticate"].startswith('Bearer realm="broker", error="invalid_request"')
    twice = client.post(
        "/oauth/userinfo",
        data=f"access_token={person_token}&access_token={person_token}",
        content_type="application/x-www-form-urlencoded",
    )
    assert twice.status_code == 400
    in_query = client.post(f"/oauth/userinfo?access_token={person_token}")
    assert in_query.status_code == 401
    as_json = client.post("/oauth/userinfo", json={"access_token": person_token})
    assert as_json.status_code == 401  # RFC 6750 2.2: only application/x-www-form-urlencoded
    empty = client.post("/oauth/userinfo", data={"access_token": ""})
    assert empty.status_code == 401
    on_me = client.open("/v1/me", method="GET", data={"access_token": person_token})
    assert on_me.status_code == 401  # the body form is for userinfo's POST only


# --- error descriptions -----------------------------------------------------------------------


def test_response_type_token_is_unsupported_with_a_clean_description(client, store, settings):
    cid, _secret, _uid = setup_authorize(client, store, settings)
    for response_type in ("token", "id_token", "code id_token", "nope"):
        resp = authorize(client, authorize_params(cid, pkce_pair()[1], response_type=response_type))
        q = query(resp.headers["Location"])
        assert q["error"] == "unsupported_response_type", response_type
        assert q["error_description"] == (
            "Only response_type=code is supported (the authorization code flow, with PKCE)."
        )


def test_invalid_client_descriptions_are_plain_words(client, store, settings):
    cid, _secret, _uid = setup_authorize(client, store, settings)
    form = code_form(client, cid)
    for headers, data in (
        ({}, form),
        (basic(cid, "brk_cs_wrong"), form),
        ({}, {**form, "client_id": cid}),
        ({}, {**form, "client_id": cid, "client_secret": "nope"}),
    ):
        resp = client.post("/oauth/token", data=data, headers=headers)
        assert resp.status_code == 401
        body = resp.get_json()
        assert body["error"] == "invalid_client"
        _no_python_repr(body["error_description"])
    resp = client.post("/oauth/token", data=form)
    assert resp.get_json()["error_description"] == (
        "Client authentication failed. Accepted here: HTTP Basic with the client secret; or client_id "
        "and client_secret in the body; or a public client's client_id alone."
    )
    revoke = client.post("/oauth/revoke", data={"token": "x"})
    _no_python_repr(revoke.get_json()["error_description"])
    introspect = client.post("/oauth/introspect", data={"token": "x"})
    _no_python_repr(introspect.get_json()["error_description"])


def test_token_endpoint_error_descriptions_never_leak_python_values(client, store, settings):
    cid, secret, _uid = setup_authorize(client, store, settings)
    form = code_form(client, cid)
    cases = [
        {"grant_type": "authorization_code"},
        {**form, "code": "brk_ac_nope.x"},
        {**form, "code_verifier": "short"},
        {**form, "redirect_uri": "https://other.example/cb"},
        {"grant_type": "refresh_token"},
        {"grant_type": "refresh_token", "refresh_token": "brk_rt_x.y"},
        {"grant_type": "client_credentials", "org_id": ORG},
        {"grant_type": "password", "username": "a", "password": "b"},
        {"code": "x"},
    ]
    for data in cases:
        resp = client.post("/oauth/token", data=data, headers=basic(cid, secret))
        assert resp.status_code in (400, 401), data
        description = resp.get_json().get("error_description", "")
        _no_python_repr(description)
        assert "None" not in description, data
    missing = client.post("/oauth/token", data={"code": "x"}, headers=basic(cid, secret)).get_json()
    assert missing == {"error": "invalid_request", "error_description": "Missing 'grant_type' in request."}
    other = client.post(
        "/oauth/token", data={"grant_type": "password"}, headers=basic(cid, secret)
    ).get_json()
    assert other == {
        "error": "unsupported_grant_type",
        "error_description": "Supported grant types: authorization_code, refresh_token, client_credentials.",
    }


# --- public clients sending HTTP Basic with an empty password ---------------------------------


def _empty_password(client_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:".encode()).decode()}


def test_public_client_with_basic_and_empty_password_is_none_auth(client, store, settings):
    cid, secret, _uid = setup_authorize(client, store, settings, client_type="public")
    assert secret is None
    resp = client.post("/oauth/token", data=code_form(client, cid), headers=_empty_password(cid))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    refreshed = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=_empty_password(cid),
    )
    assert refreshed.status_code == 200
    revoked = client.post(
        "/oauth/revoke", data={"token": refreshed.get_json()["refresh_token"]}, headers=_empty_password(cid)
    )
    assert revoked.status_code == 200
    again = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": refreshed.get_json()["refresh_token"]},
        headers=_empty_password(cid),
    )
    assert again.get_json()["error"] == "invalid_grant"


def test_confidential_client_with_basic_and_empty_password_is_refused(client, store, settings):
    cid, _secret, _uid = setup_authorize(client, store, settings)
    resp = client.post("/oauth/token", data=code_form(client, cid), headers=_empty_password(cid))
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"
    revoke = client.post("/oauth/revoke", data={"token": "brk_at_x.y"}, headers=_empty_password(cid))
    assert revoke.status_code == 401


def test_unknown_client_with_basic_and_empty_password_is_invalid_client(client):
    resp = client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers=_empty_password("app_0123456789abcdef"),
    )  # fmt: skip
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"


def test_public_client_refresh_without_any_client_identification(client, store, settings):
    """RFC 6749 6 asks only confidential clients to authenticate a refresh; requests-oauthlib sends
    just the refresh token for a public client. The token names its client; only a public one passes."""
    cid, _secret, _uid = setup_authorize(client, store, settings, client_type="public")
    body = client.post("/oauth/token", data={**code_form(client, cid), "client_id": cid}).get_json()
    refreshed = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"Origin": "https://app.example.com"},
    )
    assert refreshed.status_code == 200
    assert refreshed.get_json()["scope"] == "openid profile"
    # A browser app may read the answer: its origin is the client's, named by the refresh token.
    assert refreshed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_confidential_client_refresh_without_client_authentication_is_invalid_client(client, store, settings):
    cid, secret, _uid = setup_authorize(client, store, settings)
    body = client.post("/oauth/token", data=code_form(client, cid), headers=basic(cid, secret)).get_json()
    refused = client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    )
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "invalid_client"
