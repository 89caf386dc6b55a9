"""The token endpoint: RFC 6749 4.1.3 / 5, refresh rotation (6), org tokens (client_credentials, 4.4).

The PKCE verifier checks (RFC 7636 4.6) are in test_rfc7636_pkce.py."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from broker.app import create_app
from broker.storage import keys
from tests.support.client import basic
from tests.support.factories import make_app, raw_app, raw_installation, raw_secret
from tests.support.flows import is_active, setup_authorize
from tests.support.oauth import REDIRECT, code_form, pkce_pair
from tests.support.tokens import rotated_refresh_keys, stored, token_keys, update


def test_code_exchange_headers_and_ttls(flow, settings):
    resp = flow["token"](flow["code_form"]())
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Pragma"] == "no-cache"
    body = resp.get_json()
    assert body["access_token"].startswith(f"brk_at_{flow['cid']}.")
    assert body["refresh_token"].startswith(f"brk_rt_{flow['cid']}.")
    assert body["expires_in"] == settings.access_token_ttl
    assert body["scope"] == "openid profile"
    assert "id_token" in body


def test_tokens_are_stored_hashed_and_bound_to_the_grant(flow, store):
    body = flow["token"](flow["code_form"]()).get_json()
    members = token_keys(store, flow["cid"], flow["grant_id"])
    assert len(members) == 2
    dump = str([store.redis.get(m) for m in members]) + " ".join(members)
    assert body["access_token"] not in dump
    assert body["refresh_token"] not in dump
    at = next(m for m in members if ":at:" in m)
    data = stored(store, at)
    assert data is not None
    assert data["kind"] == "grant"
    assert data["subject"] == flow["uid"]
    assert data["grant_id"] == flow["grant_id"]
    assert store.redis.ttl(at) > 0


def test_second_redemption_is_invalid_grant_and_revokes_tokens(flow):
    form = flow["code_form"]()
    first = flow["token"](form)
    assert first.status_code == 200
    second = flow["token"](form)
    assert second.status_code == 400
    assert second.get_json()["error"] == "invalid_grant"
    assert not is_active(flow["client"], flow["cid"], flow["secret"], first.get_json()["access_token"])


def test_replay_revokes_access_and_refresh_tokens(flow):
    form = flow["code_form"]()
    body = flow["token"](form).get_json()
    assert flow["token"](form).get_json()["error"] == "invalid_grant"
    c = flow["client"]
    assert not is_active(c, flow["cid"], flow["secret"], body["access_token"])
    refresh = flow["token"]({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert refresh.status_code == 400
    assert refresh.get_json()["error"] == "invalid_grant"


def test_redirect_uri_mismatch_is_invalid_grant(flow):
    form = flow["code_form"]()
    form["redirect_uri"] = "https://app.example.com/other"
    resp = flow["token"](form)
    assert resp.get_json()["error"] == "invalid_grant"


def test_code_of_another_client_is_invalid_grant(flow, store, settings):
    form = flow["code_form"]()
    other, other_secret = make_app(store, settings)
    resp = flow["client"].post("/oauth/token", data=form, headers=basic(other, other_secret))
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(flow, store):
    form = flow["code_form"]()
    for key in store.redis.scan_iter(match="*:code:*"):
        store.redis.delete(key)  # what the 60 s TTL does
    assert flow["token"](form).get_json()["error"] == "invalid_grant"


def test_grant_revoked_between_authorize_and_token_is_invalid_grant(flow, store):
    form = flow["code_form"]()
    store.redis.delete(keys.grant(flow["cid"], flow["uid"]))
    resp = flow["token"](form)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def _age_rotation(store, seconds: int) -> None:
    """Move the rotation of the one rotated refresh token ``seconds`` into the past."""
    [rt_key] = rotated_refresh_keys(store)
    update(store, rt_key, rotated_at=int(time.time()) - seconds)


def test_refresh_rotates_and_reuse_revokes_the_whole_grant(flow, store, settings):
    body = flow["token"](flow["code_form"]()).get_json()
    sibling = flow["token"](flow["code_form"]()).get_json()  # another chain under the same grant
    r1 = flow["token"]({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert r1.status_code == 200
    assert r1.headers["Cache-Control"] == "no-store"
    new = r1.get_json()
    assert new["refresh_token"] != body["refresh_token"]
    c = flow["client"]
    assert is_active(c, flow["cid"], flow["secret"], new["access_token"])
    # Reuse after the grace window (BROKER_REFRESH_GRACE_SECONDS, default 10) is the RFC 9700 4.14.2
    # signal of a stolen token.
    _age_rotation(store, settings.refresh_grace_seconds + 1)
    reuse = flow["token"]({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert reuse.status_code == 400
    assert reuse.get_json()["error"] == "invalid_grant"
    for tok in (
        new["access_token"],
        new["refresh_token"],
        body["access_token"],
        sibling["access_token"],
        sibling["refresh_token"],
    ):
        assert not is_active(c, flow["cid"], flow["secret"], tok)


def test_refresh_with_narrower_scope_and_wider_scope(flow):
    body = flow["token"](flow["code_form"]()).get_json()
    narrow = flow["token"](
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "scope": "openid"}
    )
    assert narrow.status_code == 200
    assert narrow.get_json()["scope"] == "openid"
    wide = flow["token"](
        {
            "grant_type": "refresh_token",
            "refresh_token": narrow.get_json()["refresh_token"],
            "scope": "openid org.members.read",
        }
    )
    assert wide.status_code == 400
    assert wide.get_json()["error"] == "invalid_scope"


def test_refresh_after_grant_revoked_is_invalid_grant(flow, store):
    body = flow["token"](flow["code_form"]()).get_json()
    store.redis.delete(keys.grant(flow["cid"], flow["uid"]))
    resp = flow["token"]({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_refresh_token_of_another_client_is_invalid_grant(flow, store, settings):
    body = flow["token"](flow["code_form"]()).get_json()
    other, other_secret = make_app(store, settings)
    resp = flow["client"].post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=basic(other, other_secret),
    )
    assert resp.get_json()["error"] == "invalid_grant"


def test_refresh_grace_default_retry_gets_the_same_new_pair(client, store, settings):
    """The default grace window (10 s): presenting the just-rotated refresh token again answers with
    the very pair its rotation issued (no fork, nothing revoked); after the window, reuse revokes."""
    assert settings.refresh_grace_seconds == 10
    cid, secret, _uid = setup_authorize(client, store, settings)
    body = client.post("/oauth/token", data=code_form(client, cid), headers=basic(cid, secret)).get_json()
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    first = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    retry = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    assert first.status_code == 200
    assert retry.status_code == 200
    assert retry.headers["Cache-Control"] == "no-store"
    one, two = first.get_json(), retry.get_json()
    assert (two["access_token"], two["refresh_token"]) == (one["access_token"], one["refresh_token"])
    assert two["scope"] == one["scope"] == "openid profile"
    assert two["token_type"] == "Bearer"
    assert 0 < two["expires_in"] <= one["expires_in"]
    assert is_active(client, cid, secret, one["access_token"])
    assert is_active(client, cid, secret, one["refresh_token"])
    # The pair is kept only sealed: no token of it is stored in the clear.
    dump = " ".join(
        str(store.redis.get(k)) if store.redis.type(k) == "string" else str(store.redis.hgetall(k))
        for k in store.redis.scan_iter(match="*") if store.redis.type(k) in ("string", "hash")
    )  # fmt: skip
    [used] = rotated_refresh_keys(store)
    assert (stored(store, used) or {}).get("grace_box")  # the pair is there, sealed
    assert one["access_token"] not in dump and one["refresh_token"] not in dump
    # The new refresh token rotates as usual.
    onward = client.post(
        "/oauth/token", data={**form, "refresh_token": one["refresh_token"]}, headers=basic(cid, secret)
    )
    assert onward.status_code == 200
    assert onward.get_json()["refresh_token"] != one["refresh_token"]


def test_refresh_grace_ends_once_the_new_pair_was_used_or_revoked(client, store, settings):
    """The grace window covers a lost response only: once the new pair's refresh token was used, or
    either of its tokens revoked, the client evidently had it, and the old token is plain reuse
    (RFC 9700 4.14.2: the grant's tokens are revoked)."""
    cid, secret, _uid = setup_authorize(client, store, settings)

    def chain():
        body = client.post("/oauth/token", data=code_form(client, cid), headers=basic(cid, secret)).get_json()
        form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        return form, client.post("/oauth/token", data=form, headers=basic(cid, secret)).get_json()

    form, first = chain()
    onward = client.post(
        "/oauth/token", data={**form, "refresh_token": first["refresh_token"]}, headers=basic(cid, secret)
    ).get_json()
    retry = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    assert retry.status_code == 400
    assert retry.get_json()["error"] == "invalid_grant"
    assert not is_active(client, cid, secret, onward["refresh_token"])

    for revoked in ("refresh_token", "access_token"):
        form, first = chain()
        gone = client.post("/oauth/revoke", data={"token": first[revoked]}, headers=basic(cid, secret))
        assert gone.status_code == 200
        retry = client.post("/oauth/token", data=form, headers=basic(cid, secret))
        assert retry.status_code == 400, revoked
        assert retry.get_json()["error"] == "invalid_grant"
        assert not is_active(client, cid, secret, first["refresh_token"])


def test_refresh_grace_zero_any_reuse_revokes(tmp_path, store, redis_server):
    from tests.support.environment import make_settings

    settings = make_settings(tmp_path, redis_server.url, refresh_grace_seconds=0)
    client = create_app(settings, store).test_client()
    cid, secret, _uid = setup_authorize(client, store, settings)
    body = client.post("/oauth/token", data=code_form(client, cid), headers=basic(cid, secret)).get_json()
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    first = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    retry = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    assert first.status_code == 200
    assert retry.get_json()["error"] == "invalid_grant"
    assert not is_active(client, cid, secret, first.get_json()["access_token"])


def test_refresh_grace_window_then_reuse_revokes_the_chain(tmp_path, store, redis_server):
    from tests.support.environment import make_settings

    settings = make_settings(tmp_path, redis_server.url, refresh_grace_seconds=30)
    client = create_app(settings, store).test_client()
    cid, secret, _uid = setup_authorize(client, store, settings)
    body = client.post("/oauth/token", data=code_form(client, cid), headers=basic(cid, secret)).get_json()
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    first = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    assert first.status_code == 200
    _age_rotation(store, 31)
    late = client.post("/oauth/token", data=form, headers=basic(cid, secret))
    assert late.get_json()["error"] == "invalid_grant"
    assert not is_active(client, cid, secret, first.get_json()["access_token"])


def test_unsupported_and_disabled_grant_types(flow):
    for grant_type in ("password", "implicit", "urn:ietf:params:oauth:grant-type:device_code", "nope"):
        resp = flow["token"]({"grant_type": grant_type, "username": "a", "password": "b"})
        assert resp.status_code == 400, grant_type
        assert resp.get_json()["error"] == "unsupported_grant_type"
        assert resp.headers["Cache-Control"] == "no-store"


def test_duplicated_token_parameter_is_invalid_request(flow):
    resp = flow["client"].post(
        "/oauth/token",
        data="grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
        content_type="application/x-www-form-urlencoded",
        headers=basic(flow["cid"], flow["secret"]),
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_request"


def test_token_endpoint_rejects_get(client):
    resp = client.get("/oauth/token")
    assert resp.status_code == 405


# --- client_credentials (org tokens) ----------------------------------------------------------


@pytest.fixture
def org_app(store, settings):
    cid = raw_app(store, kind="org_app", scopes="openid org.members.read", redirect_uris=[REDIRECT])
    secret = raw_secret(store, settings, cid, None)
    inst_id = raw_installation(store, cid, "org_aaaaaaaaaaaaaaaa", "org.members.read")
    return cid, secret, inst_id


def test_client_credentials_issues_installation_token(client, store, org_app, settings):
    cid, secret, inst_id = org_app
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": "org_aaaaaaaaaaaaaaaa"},
        headers=basic(cid, secret),
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["scope"] == "org.members.read"
    assert "refresh_token" not in body
    assert resp.headers["Cache-Control"] == "no-store"
    [at] = token_keys(store, cid, inst_id)
    data = stored(store, at)
    assert data is not None
    assert data["kind"] == "installation"
    assert data["subject"] == "org_aaaaaaaaaaaaaaaa"
    assert data["grant_id"] == inst_id
    intro = client.post("/oauth/introspect", data={"token": body["access_token"]}, headers=basic(cid, secret))
    assert intro.get_json()["org_id"] == "org_aaaaaaaaaaaaaaaa"


def test_client_credentials_scope_outside_installation_is_invalid_scope(client, store, org_app):
    cid, secret, _ = org_app
    raw_installation(store, cid, "org_bbbbbbbbbbbbbbbb", "")
    resp = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "org_id": "org_bbbbbbbbbbbbbbbb",
            "scope": "org.members.read",
        },
        headers=basic(cid, secret),
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_scope"


def test_client_credentials_ignores_a_persons_scope(client, org_app):
    """``openid`` means nothing to an organization token (issue 16: pyoidc sends it with every token
    request); it is ignored and the installation's scopes apply. Before, it was invalid_scope."""
    cid, secret, _ = org_app
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": "org_aaaaaaaaaaaaaaaa", "scope": "openid"},
        headers=basic(cid, secret),
    )
    assert resp.status_code == 200
    assert resp.get_json()["scope"] == "org.members.read"


def test_client_credentials_missing_or_disabled_installation(client, store, org_app):
    cid, secret, _ = org_app
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": "org_bbbbbbbbbbbbbbbb"},
        headers=basic(cid, secret),
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"
    assert "not installed" in resp.get_json()["error_description"]
    store.redis.hset(keys.installation(cid, "org_aaaaaaaaaaaaaaaa"), "enabled", "0")
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": "org_aaaaaaaaaaaaaaaa"},
        headers=basic(cid, secret),
    )
    assert resp.get_json()["error"] == "invalid_grant"
    assert "switched off" in resp.get_json()["error_description"]


def test_client_credentials_without_org_id_is_invalid_request(client, org_app):
    cid, secret, _ = org_app
    resp = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret))
    assert resp.get_json()["error"] == "invalid_request"


def test_mini_program_cannot_use_client_credentials(client, store, settings):
    cid, secret = make_app(store, settings, kind="mini_program")
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": "org_aaaaaaaaaaaaaaaa"},
        headers=basic(cid, secret),
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "unauthorized_client"


def test_disabling_installation_invalidates_its_tokens(client, store, org_app):
    cid, secret, _ = org_app
    body = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": "org_aaaaaaaaaaaaaaaa"},
        headers=basic(cid, secret),
    ).get_json()
    assert is_active(client, cid, secret, body["access_token"])
    store.redis.hset(keys.installation(cid, "org_aaaaaaaaaaaaaaaa"), "enabled", "0")
    assert not is_active(client, cid, secret, body["access_token"])


def test_settings_ttl_is_used(tmp_path, store, redis_server):
    from tests.support.environment import make_settings

    settings = replace(make_settings(tmp_path, redis_server.url), access_token_ttl=120)
    client = create_app(settings, store).test_client()
    cid, secret = make_app(store, settings, kind="org_app", scopes="org.members.read")
    raw_installation(store, cid, "org_aaaaaaaaaaaaaaaa", "org.members.read")
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": "org_aaaaaaaaaaaaaaaa"},
        headers=basic(cid, secret),
    )
    assert resp.get_json()["expires_in"] == 120
    at = next(store.redis.scan_iter(match="*:at:*"))
    assert 0 < store.redis.ttl(at) <= 120


def test_tokens_never_reach_the_log(flow, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    body = flow["token"](flow["code_form"]()).get_json()
    text = caplog.text
    assert body["access_token"] not in text
    assert body["refresh_token"] not in text
    assert flow["secret"] not in text


def test_failed_attempts_change_nothing(flow):
    form = flow["code_form"]()
    for bad in (
        {"code_verifier": pkce_pair()[0]},
        {"redirect_uri": "https://app.example.com/x"},
        {"code_verifier": "short"},
    ):
        resp = flow["token"]({**form, **bad})
        assert resp.status_code == 400
        assert resp.get_json()["error"] in ("invalid_grant", "invalid_request")
    ok = flow["token"](form)
    assert ok.status_code == 200


def test_redis_down_is_503_not_500(flow, redis_server):
    form = flow["code_form"]()
    redis_server.stop()
    resp = flow["token"](form)
    assert resp.status_code == 503
    assert resp.get_json()["error"] == "temporarily_unavailable"
    assert resp.headers["Retry-After"] == "1"


def test_code_replay_after_refresh_revokes_the_descendants_too(flow):
    form = flow["code_form"]()
    body = flow["token"](form).get_json()
    refreshed = flow["token"](
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    ).get_json()
    assert is_active(flow["client"], flow["cid"], flow["secret"], refreshed["access_token"])
    assert flow["token"](form).get_json()["error"] == "invalid_grant"
    assert not is_active(flow["client"], flow["cid"], flow["secret"], refreshed["access_token"])
    assert not is_active(flow["client"], flow["cid"], flow["secret"], refreshed["refresh_token"])


def test_id_token_subject_is_recorded_before_the_response(flow, store):
    """The id_token discloses `sub` (the pairwise user_id): that is a disclosure like any other."""
    from tests.support.ledger import journal_records

    assert journal_records(store, flow["cid"]) == []
    resp = flow["token"](flow["code_form"]())
    assert resp.status_code == 200 and "id_token" in resp.get_json()
    [record] = journal_records(store, flow["cid"])
    assert record["fields"] == ["user_id"]
    assert record["person"] == flow["uid"]
    assert record["grant"] == flow["grant_id"]
    assert record["endpoint"] == "POST /oauth/token (id_token)"
    assert record["request_id"] == resp.headers["X-Request-Id"]


def test_no_token_response_when_the_record_cannot_be_written(flow, store, redis_server):
    form = flow["code_form"]()
    original = store.redis.pipeline

    def failing_pipeline(*args, **kwargs):
        pipe = original(*args, **kwargs)
        real_xadd = pipe.xadd

        def xadd(name, *a, **k):
            if ":journal" in name:
                raise __import__("redis").ConnectionError("journal unavailable")
            return real_xadd(name, *a, **k)

        pipe.xadd = xadd
        return pipe

    store.redis.pipeline = failing_pipeline
    try:
        resp = flow["token"](form)
    finally:
        store.redis.pipeline = original
    assert resp.status_code == 503
    assert "access_token" not in resp.get_data(as_text=True)
