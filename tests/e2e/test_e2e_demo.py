"""End to end against a real `broker demo` process on loopback, with standard client libraries.

A person signs in and consents in the (HTML) pages exactly as a browser would submit them; the
apps use Authlib's requests client without special-casing: code + PKCE, id_token validated against
the JWKS, userinfo, refresh with rotation and reuse detection, revocation, client_credentials for an
organization, and then the person reads the disclosures made about them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.demo import sign_in_and_consent
from tests.support.signin import http_sign_in

pytestmark = pytest.mark.slow


def test_mini_program_code_flow_with_pkce(demo: dict[str, Any]) -> None:
    base, creds = demo["base"], demo["creds"]
    app = creds["apps"]["mini_program"]
    redirect_uri = app["redirect_uris"][0]
    metadata = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["issuer"] == base
    assert metadata["authorization_response_iss_parameter_supported"] is True

    client = OAuth2Session(
        app["client_id"],
        redirect_uri=redirect_uri,
        scope="openid profile",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    final = sign_in_and_consent(requests.Session(), url, redirect_uri, creds["users"]["bob"], "bob")
    params = parse_qs(urlsplit(final).query)
    assert params["iss"] == [base]  # RFC 9207
    assert params["state"] == [state]

    token = client.fetch_token(
        metadata["token_endpoint"], authorization_response=final, code_verifier=verifier
    )
    assert token["token_type"].lower() == "bearer"
    assert token["access_token"].startswith("brk_at_")
    assert token["refresh_token"].startswith("brk_rt_")

    jwks = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    id_token = jwt.decode(token["id_token"], jwks, algorithms=["ES256"])
    claims = id_token.claims
    assert claims["iss"] == base and claims["aud"] in (app["client_id"], [app["client_id"]])
    assert claims["nonce"] == nonce
    assert "auth_time" in claims and "at_hash" in claims

    me = client.get(f"{base}/v1/me", timeout=10)
    assert me.status_code == 200
    assert set(me.json()) == {"user_id", "nickname", "avatar"}
    assert me.json()["user_id"] == claims["sub"]  # the pairwise id, the same everywhere for this app
    userinfo = client.get(metadata["userinfo_endpoint"], timeout=10).json()
    assert userinfo["sub"] == claims["sub"] and set(userinfo) == {"sub", "nickname", "picture"}

    old_refresh = token["refresh_token"]
    refreshed = client.refresh_token(metadata["token_endpoint"])
    assert refreshed["refresh_token"] != old_refresh
    assert client.get(f"{base}/v1/me", timeout=10).status_code == 200

    # RFC 7009 revocation with the client library: the access token stops working at once.
    revoked = client.revoke_token(
        metadata["revocation_endpoint"], token=refreshed["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200
    assert client.get(f"{base}/v1/me", timeout=10).status_code == 401

    # Reusing the rotated refresh token revokes the whole grant chain (RFC 9700 4.14.2): the newest
    # refresh token stops working too.
    reuse = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": app["client_id"]},
        timeout=10,
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    after = requests.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed["refresh_token"],
            "client_id": app["client_id"],
        },
        timeout=10,
    )
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_org_app_reads_members_of_its_org_only(demo: dict[str, Any]) -> None:
    base, creds = demo["base"], demo["creds"]
    app = creds["apps"]["org_app"]
    acme, globex = creds["orgs"]["acme"]["id"], creds["orgs"]["globex"]["id"]
    client = OAuth2Session(app["client_id"], app["client_secret"])
    token = client.fetch_token(f"{base}/oauth/token", grant_type="client_credentials", org_id=acme)
    assert token["access_token"].startswith("brk_at_")
    members = client.get(f"{base}/v1/orgs/{acme}/members", timeout=10)
    assert members.status_code == 200
    listed = members.json()["members"]
    assert {m["nickname"] for m in listed} >= {"alice", "bob"} or len(listed) >= 2
    assert all(set(m) == {"user_id", "nickname", "avatar"} for m in listed)
    other = client.get(f"{base}/v1/orgs/{globex}/members", timeout=10)
    assert other.status_code == 404
    no_install = requests.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials", "org_id": globex},
        auth=(app["client_id"], app["client_secret"]),
        timeout=10,
    )
    assert no_install.status_code == 400
    assert no_install.json()["error"] in {"invalid_grant", "unauthorized_client"}
    if os.environ.get("BROKER_E2E_DEBUG"):
        print(demo["log"].read_text())


def leaf_hash(record: dict[str, Any]) -> bytes:
    """RFC 9162 leaf hash of the canonical record, computed here without the broker's code."""
    import hashlib

    data = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(b"\x00" + data).digest()


def test_people_see_every_disclosure_with_proofs_that_verify(demo: dict[str, Any]) -> None:
    """Runs after the two flows above: bob's data went to the mini-program (id_token, /v1/me,
    userinfo) and to the org app (members listing)."""
    import base64

    from joserfc import jws

    from broker.ledger.merkle import verify_inclusion

    base, creds = demo["base"], demo["creds"]
    bob = http_sign_in(base, creds["users"]["bob"], "bob")
    deadline = time.monotonic() + 30
    while True:
        body = bob.get(f"{base}/privacy/v1/disclosures?limit=100", timeout=10).json()
        records = body["records"]
        proven = [r for r in records if r.get("inclusion_proof") is not None]
        apps_seen = {r["record"]["app"] for r in proven}
        wanted = {creds["apps"]["mini_program"]["client_id"], creds["apps"]["org_app"]["client_id"]}
        if wanted <= apps_seen or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert wanted <= apps_seen, body
    assert all(r["record"]["person"] == creds["users"]["bob"]["id"] for r in records)
    endpoints = {r["record"]["endpoint"] for r in records}
    assert {
        "POST /oauth/token (id_token)",
        "GET /v1/me",
        "userinfo",
        "GET /v1/orgs/{org_id}/members",
    } <= endpoints

    keyset = KeySet.import_key_set(requests.get(f"{base}/ledger/v1/keys", timeout=10).json())
    checkpoint = body["checkpoint"]
    signed = jws.deserialize_compact(checkpoint["checkpoint"], keyset, algorithms=["EdDSA"])
    payload = json.loads(signed.payload)
    root = base64.b64decode(payload["root_hash"])
    for entry in proven:
        leaf = leaf_hash(entry["record"])
        assert base64.b64decode(entry["leaf_hash"]) == leaf
        proof = [base64.b64decode(p) for p in entry["inclusion_proof"]]
        assert verify_inclusion(entry["index"], payload["tree_size"], leaf, proof, root)
    mini_fields = {
        tuple(r["record"]["fields"])
        for r in proven
        if r["record"]["app"] == creds["apps"]["mini_program"]["client_id"]
    }
    assert mini_fields <= {("user_id",), ("avatar", "nickname", "user_id")}
    org_fields = {
        tuple(r["record"]["fields"])
        for r in proven
        if r["record"]["app"] == creds["apps"]["org_app"]["client_id"]
    }
    assert org_fields == {("avatar", "nickname", "user_id")}


def test_an_edited_record_makes_ledger_verify_fail_and_name_it(demo: dict[str, Any]) -> None:
    """Runs last: tamper with the running demo's ledger through its own Redis socket."""
    import redis as redis_lib

    from broker.ledger import storage
    from broker.storage import keys

    env = {**demo["env"], "BROKER_REDIS_URL": f"unix://{demo['data'] / 'redis' / 'redis.sock'}"}
    ok = subprocess.run(
        [sys.executable, "-m", "broker", "ledger", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    client = redis_lib.Redis.from_url(env["BROKER_REDIS_URL"], decode_responses=False)
    log = next(f"{n:02d}" for n in range(256) if client.exists(keys.ledger_bodies(f"{n:02d}", 0)))
    body = client.lindex(keys.ledger_bodies(log, 0), 0)
    record = json.loads(storage.unpack_body(body))
    record["fields"] = ["user_id"] if record["fields"] != ["user_id"] else ["nickname"]
    client.lset(keys.ledger_bodies(log, 0), 0, json.dumps(record, sort_keys=True, separators=(",", ":")))
    bad = subprocess.run(
        [sys.executable, "-m", "broker", "ledger", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert f"log {log}: record 0 (id {record['id']})" in bad.stdout + bad.stderr
