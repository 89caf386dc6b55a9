"""Third-party OAuth 2.0 / OIDC client libraries against a live broker, at their default settings.

The broker is served over HTTPS on loopback (a certificate made here, trusted through
``REQUESTS_CA_BUNDLE`` as any deployment's would be): pyoidc refuses an issuer that is not https, and
requests-oauthlib refuses plain http unless told to be insecure. Each library runs the way its
documentation shows, configured only with what a real app configures (client id and secret,
redirect URI, scopes, endpoints from discovery). The person signs in and consents through the real
pages, driven with requests (tests/support/demo.py ``sign_in_and_consent``).

- requests-oauthlib: a public client, authorization code + PKCE (it sends HTTP Basic with an empty
  password for a client without a secret), userinfo, refresh; and ``BackendApplicationClient``
  (client_credentials with ``org_id``) reading the members API.
- pyoidc (``oic``): discovery, code + PKCE, the id_token verified against the JWKS (signature,
  iss, aud, nonce), userinfo with its default request (POST, token in the body), and asking for
  ``email`` and ``offline_access``, which this server does not grant.
- Authlib's ``OAuth2Session``: discovery, code + PKCE with the usual OIDC scope set (``openid
  profile email offline_access``), the id_token checked, userinfo, client_credentials.
"""

from __future__ import annotations

import datetime
import ipaddress
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from werkzeug.serving import make_server

from broker.app import create_app
from broker.core.pairwise import pairwise_id
from broker.storage.embedded import free_port
from tests.support.demo import sign_in_and_consent
from tests.support.environment import make_settings
from tests.support.factories import make_app, make_installation, make_org, make_user, raw_app, raw_secret
from tests.support.oauth import REDIRECT

PASSWORD = "correct horse battery"  # a test person's password


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _certificate(tmp: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 it signed: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_server(tmp_path, redis_server, store, monkeypatch) -> Iterator[dict[str, Any]]:
    """The app over HTTPS on loopback, its issuer its own https URL; requests trusts its CA."""
    ca, cert, key = _certificate(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    port = free_port()
    issuer = f"https://127.0.0.1:{port}"
    settings = replace(make_settings(tmp_path, redis_server.url), issuer=issuer)
    app = create_app(settings, store)
    server = make_server("127.0.0.1", port, app, threaded=True, ssl_context=(str(cert), str(key)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"issuer": issuer, "settings": settings, "store": store}
    finally:
        server.shutdown()
        thread.join(10)


def _person(store: Any) -> tuple[str, dict[str, str], str]:
    username = f"p{free_port()}"
    uid = make_user(store, username, PASSWORD, nickname="Alice")
    return uid, {"password": PASSWORD}, username


def _org_app(store: Any, settings: Any, member: str) -> tuple[str, str, str]:
    oid = make_org(store, [member])
    cid = raw_app(store, kind="org_app", scopes="org.members.read", redirect_uris=[REDIRECT])
    secret = raw_secret(store, settings, cid, None)
    make_installation(store, cid, oid)
    return cid, secret, oid


def _discovery(issuer: str) -> dict[str, Any]:
    meta: dict[str, Any] = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    assert meta["issuer"] == issuer
    return meta


def test_requests_oauthlib_public_client_code_pkce_userinfo_refresh(tls_server) -> None:
    from requests_oauthlib import OAuth2Session

    store, settings, issuer = tls_server["store"], tls_server["settings"], tls_server["issuer"]
    meta = _discovery(issuer)
    cid, secret = make_app(store, settings, client_type="public")
    assert secret is None
    uid, user, username = _person(store)

    oauth = OAuth2Session(cid, redirect_uri=REDIRECT, scope=["openid", "profile"], pkce="S256")
    url, state = oauth.authorization_url(meta["authorization_endpoint"])
    callback = sign_in_and_consent(requests.Session(), url, REDIRECT, user, username)
    # No client secret: requests-oauthlib sends "Authorization: Basic base64(client_id:)".
    token = oauth.fetch_token(meta["token_endpoint"], authorization_response=callback)
    assert token["token_type"] == "Bearer"
    assert token["scope"] == ["openid", "profile"]
    assert token["refresh_token"]

    me = oauth.get(meta["userinfo_endpoint"])
    assert me.status_code == 200
    assert me.json()["sub"] == pairwise_id(settings.pairwise_key, cid, uid)
    assert me.json()["nickname"] == "Alice"

    refreshed = oauth.refresh_token(meta["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert oauth.get(meta["userinfo_endpoint"]).status_code == 200
    assert state


def test_requests_oauthlib_backend_application_client_credentials(tls_server) -> None:
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session

    store, settings, issuer = tls_server["store"], tls_server["settings"], tls_server["issuer"]
    meta = _discovery(issuer)
    member = make_user(store, nickname="Bob")
    cid, secret, oid = _org_app(store, settings, member)

    oauth = OAuth2Session(client=BackendApplicationClient(client_id=cid))
    token = oauth.fetch_token(meta["token_endpoint"], client_id=cid, client_secret=secret, org_id=oid)
    assert token["scope"] == ["org.members.read"]
    assert "refresh_token" not in token
    page = oauth.get(f"{issuer}/v1/orgs/{oid}/members")
    assert page.status_code == 200
    assert [m["nickname"] for m in page.json()["members"]] == ["Bob"]
    # The same token on a person's endpoint: 403 insufficient_scope, not a 401 that invites a refresh.
    wrong = oauth.get(meta["userinfo_endpoint"])
    assert wrong.status_code == 403
    assert 'error="insufficient_scope"' in wrong.headers["WWW-Authenticate"]


def test_pyoidc_discovery_code_pkce_id_token_and_userinfo_by_post(tls_server) -> None:
    from oic import rndstr
    from oic.oic import Client
    from oic.oic.message import AuthorizationResponse, OpenIDSchema, RegistrationResponse
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD

    store, settings, issuer = tls_server["store"], tls_server["settings"], tls_server["issuer"]
    cid, secret = make_app(store, settings)
    uid, user, username = _person(store)

    client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    provider = client.provider_config(issuer)
    assert provider["issuer"] == issuer
    client.store_registration_info(
        RegistrationResponse(client_id=cid, client_secret=secret, redirect_uris=[REDIRECT])
    )
    client.redirect_uris = [REDIRECT]

    state, nonce = rndstr(), rndstr()
    pkce, verifier = client.add_code_challenge()
    request = client.construct_AuthorizationRequest(
        request_args={
            "client_id": cid,
            "response_type": "code",
            "scope": ["openid", "profile", "email", "offline_access"],
            "nonce": nonce,
            "redirect_uri": REDIRECT,
            "state": state,
            **pkce,
        }
    )
    url = request.request(client.authorization_endpoint)
    callback = sign_in_and_consent(requests.Session(), url, REDIRECT, user, username)
    response = client.parse_response(
        AuthorizationResponse, info=urlsplit(callback).query, sformat="urlencoded"
    )
    assert isinstance(response, AuthorizationResponse)
    assert response["state"] == state

    # Verifies the id_token: ES256 signature against the JWKS, iss, aud, nonce, expiry.
    token = client.do_access_token_request(
        state=state,
        request_args={"code": response["code"], "code_verifier": verifier, "redirect_uri": REDIRECT},
        authn_method="client_secret_basic",
    )
    assert token["scope"] == ["openid", "profile"]
    id_token = token["id_token"]
    assert id_token["iss"] == issuer
    assert id_token["nonce"] == nonce
    assert cid in id_token["aud"]
    assert id_token["sub"] == pairwise_id(settings.pairwise_key, cid, uid)

    # pyoidc's default userinfo request: POST with the access token in the form body.
    info = client.do_user_info_request(state=state)
    assert isinstance(info, OpenIDSchema)
    assert info["sub"] == id_token["sub"]
    assert info["nickname"] == "Alice"


def test_authlib_client_discovery_code_pkce_userinfo_and_client_credentials(tls_server) -> None:
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session
    from joserfc import jwt
    from joserfc.jwk import KeySet

    store, settings, issuer = tls_server["store"], tls_server["settings"], tls_server["issuer"]
    meta = _discovery(issuer)
    cid, secret = make_app(store, settings)
    uid, user, username = _person(store)

    oauth = OAuth2Session(
        cid, secret, scope="openid profile email offline_access", redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )  # fmt: skip
    verifier, nonce = generate_token(48), generate_token(16)
    url, _state = oauth.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    callback = sign_in_and_consent(requests.Session(), url, REDIRECT, user, username)
    token = oauth.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    assert token["scope"] == "openid profile"

    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"], keys, algorithms=meta["id_token_signing_alg_values_supported"]
    ).claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": cid},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True},
    ).validate(claims)
    assert claims["sub"] == pairwise_id(settings.pairwise_key, cid, uid)

    info = oauth.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"]
    refreshed = oauth.refresh_token(meta["token_endpoint"])
    assert refreshed["access_token"] != token["access_token"]

    member = make_user(store, nickname="Bob")
    org_cid, org_secret, oid = _org_app(store, settings, member)
    org = OAuth2Session(org_cid, org_secret)
    org_token = org.fetch_token(meta["token_endpoint"], grant_type="client_credentials", org_id=oid)
    assert org_token["scope"] == "org.members.read"
    page = org.get(f"{issuer}/v1/orgs/{oid}/members")
    assert [m["nickname"] for m in page.json()["members"]] == ["Bob"]


def test_pyoidc_client_credentials_and_a_protected_resource(tls_server) -> None:
    from oic.oauth2.message import AccessTokenResponse, CCAccessTokenRequest
    from oic.oic import Client
    from oic.oic.message import RegistrationResponse
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD

    store, settings, issuer = tls_server["store"], tls_server["settings"], tls_server["issuer"]
    member = make_user(store, nickname="Bob")
    cid, secret, oid = _org_app(store, settings, member)

    client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    client.provider_config(issuer)
    client.store_registration_info(RegistrationResponse(client_id=cid, client_secret=secret))
    token = client.do_any(
        request=CCAccessTokenRequest,
        endpoint=client.token_endpoint,
        request_args={"org_id": oid},
        response=AccessTokenResponse,
        authn_method="client_secret_basic",
    )
    assert isinstance(token, AccessTokenResponse), token.to_dict()
    assert token["scope"] == ["org.members.read"]
    page = client.fetch_protected_resource(f"{issuer}/v1/orgs/{oid}/members", token=token["access_token"])
    assert page.status_code == 200
    assert [m["nickname"] for m in page.json()["members"]] == ["Bob"]
