"""RFC 8414 / OIDC Discovery metadata, JWKS, CORS, and ``broker keys rotate``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jwt
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from broker.app import create_app
from tests.support.environment import ISSUER, ROOT, broker_env
from tests.support.factories import make_app


def test_openid_configuration_is_valid_and_lists_only_supported(client):
    resp = client.get("/.well-known/openid-configuration")
    assert resp.status_code == 200
    meta = resp.get_json()
    # Every OIDC Discovery check except "RS256 MUST be included": the brief mandates ES256 only, and
    # the metadata must list only what is supported (deliberate deviation, see the report).
    checked = OpenIDProviderMetadata(meta)
    for name in dir(checked):
        if name.startswith("validate_") and name != "validate_id_token_signing_alg_values_supported":
            getattr(checked, name)()
    assert meta["issuer"] == ISSUER
    assert meta["userinfo_endpoint"] == f"{ISSUER}/oauth/userinfo"
    assert meta["jwks_uri"] == f"{ISSUER}/oauth/jwks"
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
    assert meta["subject_types_supported"] == ["pairwise"]
    assert "password" not in meta["grant_types_supported"]
    assert "implicit" not in meta["grant_types_supported"]
    assert set(meta["scopes_supported"]) == {
        "openid",
        "profile",
        "contact",
        "org.members.read",
        "org.departments.read",
        "org.read",
    }


def test_oauth_authorization_server_metadata_matches(client):
    a = client.get("/.well-known/oauth-authorization-server").get_json()
    AuthorizationServerMetadata(a).validate()
    assert a == client.get("/.well-known/openid-configuration").get_json()


def test_discovery_names_every_claim_the_broker_releases(client):
    meta = client.get("/.well-known/openid-configuration").get_json()
    claims = meta["claims_supported"]
    # what an id_token carries, then what userinfo releases under the catalog (basic, then contact)
    id_token = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash"]
    assert claims == [*id_token, "contact_permission", "nickname", "picture"]
    # catalog names are given as OIDC claims; a field that can never leave is never listed
    assert not {"user_id", "avatar", "name", "email", "mobile"} & set(claims)


def test_claims_supported_follows_the_scope_catalog(tmp_path: Path, settings, store):
    """An operator's catalog that adds a shareable field under an individual scope adds the claim;
    an organization-only field (members API, not userinfo) does not."""
    scopes = tmp_path / "scopes"
    scopes.mkdir()
    (scopes / "basic.toml").write_text((ROOT / "scopes" / "basic.toml").read_text())
    (scopes / "extra.toml").write_text(
        """
[fields.locale]
sensitivity = "low"
shareable = true
basic = true
description.en = "Your language"
description.zh = "你的语言"

[fields.department]
sensitivity = "low"
shareable = true
basic = true
description.en = "Your department"
description.zh = "你的部门"
admin_description.en = "Each member's department"
admin_description.zh = "每位成员的部门"

[scopes.locale]
audience = "individual"
fields = ["locale"]
description.en = "See your language"
description.zh = "查看你的语言"

[scopes."org.department.read"]
audience = "organization"
fields = ["user_id", "department"]
description.en = "See members' departments"
description.zh = "查看成员的部门"
"""
    )
    custom = create_app(replace(settings, scopes_dir=scopes), store).test_client()
    meta = custom.get("/.well-known/openid-configuration").get_json()
    assert "locale" in meta["claims_supported"] and "locale" in meta["scopes_supported"]
    assert "department" not in meta["claims_supported"]
    assert {"nickname", "picture"} <= set(meta["claims_supported"])


def test_ui_locales_are_the_translations_the_broker_has(client):
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["ui_locales_supported"] == ["en", "zh-Hans"]  # BCP 47, not gettext's zh_Hans
    shipped = sorted(p.name for p in (ROOT / "broker" / "translations").iterdir() if p.is_dir())
    assert [tag.replace("-", "_") for tag in meta["ui_locales_supported"]] == shipped
    # and each one is honoured as a ui_locales hint
    page = client.get("/login?ui_locales=zh-Hans").get_data(as_text=True)
    assert '<html lang="zh-Hans"' in page


def test_service_documentation_is_served(client):
    meta = client.get("/.well-known/openid-configuration").get_json()
    url = meta["service_documentation"]
    assert url == f"{ISSUER}/docs"
    page = client.get(url.removeprefix(ISSUER))
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "/oauth/token" in page.get_data(as_text=True)


def test_jwks_publishes_public_es256_key_only(client):
    resp = client.get("/oauth/jwks")
    assert resp.status_code == 200
    assert resp.mimetype == "application/jwk-set+json"
    jwks = json.loads(resp.get_data())
    assert [(k["kty"], k["alg"]) for k in jwks["keys"]] == [("EC", "ES256")]
    assert jwks["keys"][0]["kid"]
    assert all("d" not in k for k in jwks["keys"])


def test_ledger_key_is_published_only_at_ledger_v1_keys(client, app):
    """OIDC clients meet no key type they cannot use (pyoidc logged "Unknown key type: OKP");
    the ledger's key is where ledger verifiers look for it."""
    oidc = client.get("/oauth/jwks").get_json()["keys"]
    assert not [k for k in oidc if k["kty"] == "OKP"]
    ledger = client.get("/ledger/v1/keys").get_json()["keys"]
    assert [(k["kty"], k["crv"], k["alg"]) for k in ledger] == [("OKP", "Ed25519", "EdDSA")]
    assert ledger[0]["kid"] == app.extensions["broker.keyring"].signing_key("EdDSA").kid
    assert not {k["kid"] for k in oidc} & {k["kid"] for k in ledger}
    assert all("d" not in k for k in ledger)


def test_id_tokens_verify_with_the_oidc_jwks(issued, client):
    """The id_token's kid is in /oauth/jwks and PyJWT verifies the token with that key, unmodified."""
    keys = jwt.PyJWKSet.from_dict(client.get("/oauth/jwks").get_json())
    header = jwt.get_unverified_header(issued["id_token"])
    assert header["alg"] == "ES256"
    (key,) = [k for k in keys.keys if k.key_id == header["kid"]]
    claims = jwt.decode(issued["id_token"], key, algorithms=["ES256"], audience=issued["cid"], issuer=ISSUER)
    assert claims["sub"] and claims["auth_time"]


def test_cors_on_discovery_only_for_registered_origins(client, store, settings):
    make_app(store, settings, redirect_uris=["https://spa.example.com/callback"])
    ok = client.get("/oauth/jwks", headers={"Origin": "https://spa.example.com"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://spa.example.com"
    assert "Origin" in ok.headers["Vary"]
    bad = client.get("/.well-known/openid-configuration", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in bad.headers


def test_cors_on_token_endpoint_only_for_the_clients_own_origins(client, store, settings):
    cid, _ = make_app(store, settings, client_type="public", redirect_uris=["https://spa.example.com/cb"])
    other, _ = make_app(store, settings, client_type="public", redirect_uris=["https://other.example.com/cb"])
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": cid},
        headers={"Origin": "https://spa.example.com"},
    )
    assert resp.status_code == 400
    assert resp.headers["Access-Control-Allow-Origin"] == "https://spa.example.com"
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": other},
        headers={"Origin": "https://spa.example.com"},
    )
    assert "Access-Control-Allow-Origin" not in resp.headers
    pre = client.options(
        "/oauth/token", headers={"Origin": "https://spa.example.com", "Access-Control-Request-Method": "POST"}
    )
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "https://spa.example.com"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]


def test_no_cors_on_authorize(client, store, settings):
    make_app(store, settings, redirect_uris=["https://spa.example.com/cb"])
    resp = client.get(
        "/oauth/authorize?client_id=app_0000000000000000", headers={"Origin": "https://spa.example.com"}
    )
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_keys_rotate_cli_keeps_old_key_published(tmp_path, settings):
    env = broker_env(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "broker", "keys", "rotate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "ES256" in run.stdout
    data = json.loads((tmp_path / "data" / "signing-keys.json").read_text())
    es = [k for k in data["keys"] if k["alg"] == "ES256"]
    assert len(es) == 2
    assert sum("exp" not in k for k in es) == 1  # one current signer, one in overlap
    run = subprocess.run(
        [sys.executable, "-m", "broker", "keys", "rotate", "--alg", "Ed25519"],  # the earlier name
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "broker", "keys", "rotate", "--alg", "EdDSA"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "data" / "signing-keys.json").read_text())
    ledger = [k for k in data["keys"] if k["kty"] == "OKP"]
    assert len(ledger) == 3 and {k["alg"] for k in ledger} == {"EdDSA"}
    assert sum("exp" not in k for k in ledger) == 1
    bad = subprocess.run(
        [sys.executable, "-m", "broker", "keys", "rotate", "--alg", "RS256"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2


def test_keys_init_creates_the_file_once_in_production(tmp_path):
    """What compose's one-shot ``keys`` service runs before the server: idempotent, never rotates."""
    path = tmp_path / "keys" / "signing-keys.json"
    path.parent.mkdir()
    env = broker_env(
        tmp_path,
        BROKER_ENV="production",
        BROKER_SIGNING_KEYS_FILE=str(path),
        BROKER_SECRET_KEY="s" * 32,
        BROKER_TOKEN_HASH_KEY="t" * 32,
        BROKER_PAIRWISE_KEY="p" * 32,
        BROKER_PLATFORM_API_KEY="k" * 32,
    )

    def init() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "broker", "keys", "init"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = init()
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"created the signing keys file {path}: ES256 ")
    created = path.read_text()
    assert sorted(k["alg"] for k in json.loads(created)["keys"]) == ["ES256", "EdDSA"]
    assert path.stat().st_mode & 0o777 == 0o600
    second = init()
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("kept the existing signing keys file")
    assert path.read_text() == created


def test_rotated_key_signs_new_id_tokens_and_old_stays_in_jwks(client, app):
    keyring = app.extensions["broker.keyring"]
    before = keyring.signing_key("ES256").kid
    new_kid = keyring.rotate("ES256", 3600)
    kids = {k["kid"] for k in client.get("/oauth/jwks").get_json()["keys"]}
    assert {before, new_kid} <= kids
    assert keyring.signing_key("ES256").kid == new_kid
