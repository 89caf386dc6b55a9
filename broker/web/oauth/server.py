"""Authlib's authorization server with the broker's storage hooks, grants and extensions.

Authlib owns the protocol (RFC 6749 grants, RFC 7636 PKCE, RFC 7009 revocation, RFC 7662
introspection, RFC 9207 ``iss``, OpenID Connect Core code flow); this module only fills its hooks.
Token storage and the validity rule live in ``broker.tokens.service``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.authenticate_client import authenticate_none
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import OpenIDCode
from flask import Flask

from broker.consent.grants import get_grant
from broker.core import ids
from broker.core.hashing import keyed_hash
from broker.core.keyring import ID_TOKEN_ALG
from broker.core.pairwise import pairwise_id
from broker.tokens import service as tokens
from broker.web.interactions import session as login_session
from broker.web.oauth.id_token_disclosure import record_id_token_disclosure
from broker.web.oauth.models import (
    CONFIDENTIAL_METHODS,
    Client,
    load_client,
    load_grant,
    requested_scopes,
)
from broker.web.shared import context as web

ALL_METHODS = [*CONFIDENTIAL_METHODS, "none"]
ID_TOKEN_TTL = 3600


@dataclass
class EndUser:
    """The signed-in person an authorization is for (``scopes``: what the consent allows)."""

    uid: str
    auth_time: int | None = None
    grant_id: str = ""
    scopes: str | None = None
    client_id: str = ""
    sid: str = ""  # the browser session's public id: the id_token's ``sid`` (OIDC Back-Channel Logout)

    def get_user_id(self) -> str:
        return self.uid


@dataclass
class AuthCode:
    """An authorization code read from Redis (not yet consumed: consumption happens with the tokens)."""

    code: str
    code_hash: str
    data: dict[str, str]

    def get_redirect_uri(self) -> str:
        return self.data.get("redirect_uri", "")

    def get_scope(self) -> str:
        return self.data.get("scope", "")

    def get_nonce(self) -> str | None:
        return self.data.get("nonce") or None

    def get_auth_time(self) -> int | None:
        value = self.data.get("auth_time")
        return int(value) if value else None

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class RefreshCredential:
    token: str
    info: tokens.TokenInfo

    def check_client(self, client: Client) -> bool:
        return self.info.client_id == client.client_id

    def get_scope(self) -> str:
        return " ".join(self.info.effective_scopes)


def _refused(exc: tokens.IssueRefused) -> InvalidGrantError:
    messages = {
        "replayed": "The authorization code was already used; tokens issued from it are revoked.",
        "reused": "The refresh token was already used; every token of this grant is revoked.",
        "expired": "The code or refresh token is invalid or expired.",
        "revoked": "The grant or installation behind this request was revoked or disabled.",
    }
    return InvalidGrantError(messages.get(exc.reason, "The grant is invalid."))


def _known_scopes() -> set[str]:
    return set(web.catalog().scope_names())


def _expiries(grant_type: str) -> tuple[int, int]:
    s = web.settings()
    now = int(time.time())
    return now + s.access_token_ttl, now + s.refresh_token_ttl


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS

    def generate_authorization_code(self) -> str:
        return ids.new_token(ids.CODE_PREFIX, self.request.client.client_id)

    def save_authorization_code(self, code: str, request: Any) -> None:
        user: EndUser = request.user
        data = request.payload.data
        record = {
            "client_id": request.client.client_id,
            "user_id": user.uid,
            "grant_id": user.grant_id,
            "redirect_uri": request.payload.redirect_uri or "",
            "scope": user.scopes if user.scopes is not None else (request.scope or ""),
            "nonce": data.get("nonce") or "",
            "auth_time": str(user.auth_time or ""),
            "sid": user.sid,
            "code_challenge": data.get("code_challenge") or "",
            "code_challenge_method": data.get("code_challenge_method") or "",
            "created_at": str(int(time.time())),
        }
        s = web.settings()
        tokens.save_code(web.store(), s.token_hash_key, code, request.client.client_id, s.code_ttl, record)

    def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
        key = web.settings().token_hash_key
        data = tokens.read_code(web.store(), key, code, client.client_id)
        if not data or data.get("client_id") != client.client_id:
            return None
        return AuthCode(code=code, code_hash=keyed_hash(key, code), data=data)

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        """Nothing to do: the code was consumed atomically with the token write (``save_token``)."""

    def authenticate_user(self, authorization_code: AuthCode) -> EndUser | None:
        data = authorization_code.data
        return EndUser(uid=data["user_id"], auth_time=authorization_code.get_auth_time(),
                       grant_id=data.get("grant_id", ""), client_id=data["client_id"],
                       sid=data.get("sid", ""))  # fmt: skip

    def save_token(self, token: dict[str, Any]) -> None:
        s = web.settings()
        code: AuthCode = self.request.authorization_code
        user: EndUser = self.request.user
        at_exp, rt_exp = _expiries(self.GRANT_TYPE)
        item = tokens.Issue(
            client_id=self.request.client.client_id, kind="grant", subject=user.uid, grant_id=user.grant_id,
            scopes=token.get("scope", ""), access_token=token["access_token"], access_expires_at=at_exp,
            refresh_token=token.get("refresh_token"), refresh_expires_at=rt_exp, family=tokens.new_family(),
            auth_time=user.auth_time,
        )  # fmt: skip
        try:
            tokens.issue(web.store(), s.token_hash_key, item, consume="code",
                         consumed_key=tokens.token_key(tokens.CODE_PREFIX, item.client_id, code.code_hash),
                         tombstone_ttl=s.refresh_token_ttl)  # fmt: skip
        except tokens.IssueRefused as exc:
            raise _refused(exc) from None


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation on every use (RFC 9700 4.14.2)

    def validate_token_request(self) -> None:
        """RFC 6749 6, with the scope rule of the code flow: unknown values are ignored; what is
        left must be within what the refresh token carries (``invalid_scope`` naming the rest)."""
        client = self._validate_request_client()
        self.request.client = client
        presented = self.request.form.get("refresh_token")
        if not presented:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        credential = self.authenticate_refresh_token(presented)
        if credential is None or not credential.check_client(client):
            raise InvalidGrantError("The refresh token is invalid, expired or revoked.")
        carried = set(credential.info.effective_scopes)
        if credential.info.kind == "grant":
            # Incremental consent (issue 14, item 5): a scope the person added to the grant since (the
            # privacy center's grant_url page) comes with the next refresh.
            grant = get_grant(web.store(), client.client_id, credential.info.subject)
            if grant is not None and grant.get("id") == credential.info.grant_id:
                carried |= set(grant["scopes"]) & set(client.individual_scopes)
        if not carried:
            raise InvalidScopeError("The refresh token carries no scope any more.")
        wanted = requested_scopes(self.request.payload.scope, _known_scopes())
        if wanted is not None:
            beyond = [s for s in wanted if s not in carried]
            if beyond:
                raise InvalidScopeError(f"The refresh token was not granted: {', '.join(beyond)}.")
        self.request.refresh_token = credential
        ordered = [s for s in client.individual_scopes if s in carried]
        self.request.scope = " ".join(wanted) if wanted else " ".join(ordered) or credential.get_scope()

    def issue_token(self, user: EndUser, refresh_token: RefreshCredential) -> dict[str, Any]:
        return self.generate_token(
            user=user, scope=self.request.scope, include_refresh_token=self.INCLUDE_NEW_REFRESH_TOKEN
        )

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshCredential | None:
        s = web.settings()
        info = tokens.lookup_refresh_token(web.store(), s.token_hash_key, refresh_token)
        if info is None or info.kind != "grant":
            return None
        if info.rotated_at is not None:
            grace = s.refresh_grace_seconds
            if grace == 0 or int(time.time()) - info.rotated_at > grace:
                tokens.revoke_grant_tokens(
                    web.store(), tokens.owner_key("grant", info.client_id, info.subject), info.grant_id
                )
                raise InvalidGrantError(
                    "The refresh token was already used; every token of this grant is revoked."
                )
        return RefreshCredential(token=refresh_token, info=info)

    def authenticate_user(self, refresh_token: RefreshCredential) -> EndUser:
        return EndUser(uid=refresh_token.info.subject, auth_time=refresh_token.info.auth_time,
                       grant_id=refresh_token.info.grant_id)  # fmt: skip

    def save_token(self, token: dict[str, Any]) -> None:
        s = web.settings()
        old: RefreshCredential = self.request.refresh_token
        at_exp, rt_exp = _expiries(self.GRANT_TYPE)
        item = tokens.Issue(
            client_id=old.info.client_id, kind="grant", subject=old.info.subject, grant_id=old.info.grant_id,
            scopes=token.get("scope", ""), access_token=token["access_token"], access_expires_at=at_exp,
            refresh_token=token.get("refresh_token"), refresh_expires_at=rt_exp, family=old.info.family,
            auth_time=old.info.auth_time,
        )  # fmt: skip
        consumed = tokens.token_key(
            tokens.REFRESH_PREFIX, item.client_id, keyed_hash(s.token_hash_key, old.token)
        )
        try:
            earlier = tokens.issue(web.store(), s.token_hash_key, item, consume="refresh",
                                   consumed_key=consumed, grace_seconds=s.refresh_grace_seconds,
                                   used_refresh_token=old.token)  # fmt: skip
        except tokens.IssueRefused as exc:
            raise _refused(exc) from None
        if earlier is not None:
            # A retry within the grace window: answer with the pair the first rotation issued (the
            # dict is the response Authlib sends), so the chain does not fork.
            token.clear()
            token.update(earlier)

    def revoke_old_credential(self, refresh_token: RefreshCredential) -> None:
        """Nothing to do: the old token was marked rotated in the same script that saved the new one."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """Org tokens: ``client_credentials`` with ``org_id``, bound to that org's installation."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(CONFIDENTIAL_METHODS)

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                "Only App Center (org_app) apps may use client_credentials; mini-programs use the code flow."
            )
        self.request.client = client
        org_id = self.request.form.get("org_id")
        if not org_id:
            raise InvalidRequestError("Missing 'org_id': name the organization the token is for.")
        if not ids.ORG_ID_RE.match(org_id):
            raise InvalidGrantError("The app is not installed in this organization.")
        # Unknown values are ignored as in the code flow (only unknown ones: invalid_scope). A person's
        # scopes mean nothing to an organization token and are ignored too (pyoidc sends ``openid``
        # with every token request); with no organization scope asked for, the installation's apply.
        # The installation itself (installed, enabled, what it grants) is checked by the script that
        # writes the token (``create_token_response``): one round trip instead of a read and a write.
        organization = set(web.catalog().scope_names("organization"))
        known = requested_scopes(self.request.payload.scope, _known_scopes()) or []
        self.request.org_id = org_id
        self.request.scope = " ".join(s for s in known if s in organization)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        s = web.settings()
        client: Client = self.request.client
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        at_exp, _ = _expiries(self.GRANT_TYPE)
        item = tokens.Issue(
            client_id=client.client_id, kind="installation", subject=self.request.org_id, grant_id="",
            scopes=self.request.scope, access_token=token["access_token"], access_expires_at=at_exp,
            refresh_token=None, refresh_expires_at=0,
        )  # fmt: skip
        try:
            token["scope"] = tokens.issue_installation_token(web.store(), s.token_hash_key, item)
        except tokens.IssueRefused as exc:
            raise _installation_refused(exc) from None
        return 200, token, self.TOKEN_RESPONSE_HEADER


def _installation_refused(exc: tokens.IssueRefused) -> OAuth2Error:
    if exc.reason == "invalid_scope":
        return InvalidScopeError(f"The organization did not grant: {', '.join(exc.detail.split())}.")
    if exc.reason == "no_scopes":
        return InvalidScopeError("The installation grants no scopes.")
    if exc.reason == "not_installed":
        return InvalidGrantError("The app is not installed in this organization.")
    if exc.reason == "disabled":
        return InvalidGrantError("The app is switched off in this organization.")
    return _refused(exc)


class S256CodeChallenge(CodeChallenge):
    """RFC 7636 with S256 only; required for public clients; a verifier without a challenge is
    ``invalid_grant`` (RFC 9700 4.8.2: the code was not bound to a verifier)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and not data.get("code_challenge_method"):
            raise InvalidRequestError("'code_challenge_method' must be S256 (plain is not supported).")
        if grant.request.client.public and not data.get("code_challenge"):
            raise InvalidRequestError("Public clients must use PKCE: send code_challenge with method S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        code: AuthCode = grant.request.authorization_code
        if grant.request.form.get("code_verifier") and not code.data.get("code_challenge"):
            raise InvalidGrantError(
                "The authorization request had no code_challenge; code_verifier not allowed."
            )
        super().validate_code_verifier(grant, result)

    def get_authorization_code_challenge(self, authorization_code: AuthCode) -> str:
        return authorization_code.data.get("code_challenge", "")

    def get_authorization_code_challenge_method(self, authorization_code: AuthCode) -> str:
        return authorization_code.data.get("code_challenge_method") or "S256"


class BrokerOpenIDCode(OpenIDCode):
    """id_token: ES256 with ``kid``, ``sub`` = pairwise id, plus nonce, auth_time, at_hash."""

    def resolve_client_private_key(self, client: Client) -> Any:
        return web.keyring().signing_key(ID_TOKEN_ALG)

    def get_client_algorithm(self, client: Client) -> str:
        return ID_TOKEN_ALG

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": ID_TOKEN_ALG, "kid": str(web.keyring().signing_key(ID_TOKEN_ALG).kid), "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": web.settings().issuer,
            "aud": [client.client_id],
            "iat": now,
            "exp": now + ID_TOKEN_TTL,
        }

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False  # codes are single use, so a nonce cannot be replayed through this server

    def generate_user_info(self, user: EndUser, scope: str) -> dict[str, Any]:
        claims = {"sub": pairwise_id(web.settings().pairwise_key, user.client_id, user.uid)}
        if user.sid:
            claims["sid"] = user.sid  # OIDC Back-Channel Logout 1.0 section 2.1
        return claims

    def process_token(self, grant: Any, response: Any) -> Any:
        token = super().process_token(grant, response)
        if "id_token" in token:
            user: EndUser = grant.request.user
            found = load_grant(web.store(), user.client_id, user.uid)
            record_id_token_disclosure(user.client_id, found, user.uid)
        return token


class BrokerIssuer(IssuerParameter):
    def get_issuer(self) -> str:
        return web.settings().issuer


class BrokerRevocation(RevocationEndpoint):
    """RFC 7009: a client revokes only its own tokens; anything else is a silent 200."""

    CLIENT_AUTH_METHODS = ALL_METHODS

    def authenticate_token(self, request: Any, client: Client) -> str | None:
        self.check_params(request, client)
        token = request.form["token"]
        for prefix in (ids.ACCESS_PREFIX, ids.REFRESH_PREFIX):
            if ids.client_of(token, prefix) == client.client_id:
                return str(token)
        return None

    def revoke_token(self, token: str, request: Any) -> None:
        # Revoking a refresh token ends its whole chain, access tokens included (RFC 7009 2.1).
        family = token.startswith(ids.REFRESH_PREFIX)
        tokens.revoke_token(web.store(), web.settings().token_hash_key, token, family=family)


class BrokerIntrospection(IntrospectionEndpoint):
    """RFC 7662 for a confidential client's own tokens; validity = ``tokens.lookup_*``."""

    CLIENT_AUTH_METHODS = list(CONFIDENTIAL_METHODS)

    def authenticate_token(self, request: Any, client: Client) -> tokens.TokenInfo | None:
        """Authlib's, with the client id the token carries checked first: another client's or a
        malformed token is ``active: false`` without reading anything (one lookup at most)."""
        self.check_params(request, client)
        token = request.form["token"]
        if not any(
            ids.client_of(token, p) == client.client_id for p in (ids.ACCESS_PREFIX, ids.REFRESH_PREFIX)
        ):
            return None
        info = self.query_token(token, request.form.get("token_type_hint"))
        return info if info is not None and self.check_permission(info, client, request) else None

    def query_token(self, token_string: str, token_type_hint: str | None) -> tokens.TokenInfo | None:
        s = web.settings()
        if token_string.startswith(ids.REFRESH_PREFIX):
            info = tokens.lookup_refresh_token(web.store(), s.token_hash_key, token_string)
            return info if info and info.rotated_at is None else None
        return tokens.lookup_access_token(web.store(), s.token_hash_key, token_string)

    def check_permission(self, token: tokens.TokenInfo, client: Client, request: Any) -> bool:
        return token.client_id == client.client_id

    def create_introspection_payload(self, token: tokens.TokenInfo | None) -> dict[str, Any]:
        if token is None:
            return {"active": False}
        payload: dict[str, Any] = {
            "active": True,
            "scope": " ".join(token.effective_scopes),
            "client_id": token.client_id,
            "token_type": "Bearer" if token.token_type == "access_token" else "refresh_token",  # noqa: S105
            "exp": token.expires_at,
            "iat": token.issued_at,
            "iss": web.settings().issuer,
        }
        if token.kind == "grant":
            payload["sub"] = pairwise_id(web.settings().pairwise_key, token.client_id, token.subject)
        else:
            payload["org_id"] = token.subject
        return payload

    def introspect_token(self, token: tokens.TokenInfo) -> dict[str, Any]:
        return self.create_introspection_payload(token)


def _authenticate_none(query_client: Any, request: Any) -> Client | None:
    """``none`` for a public client: its client_id in the body, or HTTP Basic with an empty password
    (``client_id:``, how requests-oauthlib and others send a client without a secret), or, on a
    refresh with no client identification at all, the client the refresh token names (RFC 6749 6
    asks only confidential clients to authenticate; requests-oauthlib's ``refresh_token`` sends
    nothing else). A confidential client is never authenticated this way."""
    client_id, secret = extract_basic_authorization(request.headers)
    if client_id and not secret and not request.form.get("client_secret"):
        client: Client | None = query_client(client_id)
        if client is None:
            raise InvalidClientError(status_code=401, description="The client does not exist on this server.")
        return client if client.public else None
    anonymous = not request.headers.get("Authorization") and not request.form.get("client_id")
    if (
        anonymous
        and request.form.get("grant_type") == "refresh_token"
        and not request.form.get("client_secret")
    ):
        named = ids.client_of(request.form.get("refresh_token") or "", ids.REFRESH_PREFIX)
        client = query_client(named) if named else None
        return client if client is not None and client.public else None
    return authenticate_none(query_client, request)


_METHOD_NAMES = {
    "client_secret_basic": "HTTP Basic with the client secret",
    "client_secret_post": "client_id and client_secret in the body",
    "none": "a public client's client_id alone",
}


class BrokerAuthorizationServer(AuthorizationServer):
    def handle_error_response(self, request: Any, error: Any) -> Any:
        """Every protocol error leaves with a description in plain words: Authlib's own for an
        unsupported grant type prints ``grant_type=None`` when the parameter is missing."""
        if isinstance(error, UnsupportedGrantTypeError):
            if error.grant_type:
                error = OAuth2Error(
                    "Supported grant types: authorization_code, refresh_token, client_credentials.",
                    error="unsupported_grant_type",
                )
            else:
                error = InvalidRequestError("Missing 'grant_type' in request.")
        return super().handle_error_response(request, error)

    def authenticate_client(self, request: Any, methods: list[str], endpoint: str = "token") -> Any:
        """Authlib's client authentication, with a description that names the accepted ways in words
        (Authlib's own prints the Python list of method names)."""
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as exc:
            if exc.description and "[" in exc.description:
                ways = "; or ".join(_METHOD_NAMES.get(m, m) for m in methods)
                exc.description = f"Client authentication failed. Accepted here: {ways}."
            raise
        if client.status != "active":
            # Said only once the client proved who it is (issue 13, item 6).
            raise InvalidClientError(
                status_code=401,
                description="This app is suspended by the platform operator: no tokens until it is restored.",
            )
        return client


def _query_client(client_id: str) -> Client | None:
    """The app, suspended or not: a suspended one is refused after it authenticated
    (``BrokerAuthorizationServer.authenticate_client``), with a description that says so."""
    return load_client(web.store(), client_id)


def _save_token(token: dict[str, Any], request: Any) -> None:
    raise RuntimeError("every grant stores its own tokens")  # pragma: no cover


def _generate_token(
    grant_type: str, client: Client, user: Any = None, scope: str | None = None,
    expires_in: int | None = None, include_refresh_token: bool = True,
) -> dict[str, Any]:  # fmt: skip
    s = web.settings()
    token: dict[str, Any] = {
        "token_type": "Bearer",
        "access_token": ids.new_token(ids.ACCESS_PREFIX, client.client_id),
        "expires_in": s.access_token_ttl,
        "scope": scope or "",
    }
    if include_refresh_token:
        token["refresh_token"] = ids.new_token(ids.REFRESH_PREFIX, client.client_id)
    return token


def create_server(app: Flask) -> AuthorizationServer:
    # Authlib logs issued tokens and client secrets at DEBUG ("Issue token %r ..."): never let that reach
    # the log, whatever BROKER_LOG_LEVEL says (DESIGN: never log a secret or token).
    logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLogger("authlib").level))
    server = BrokerAuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_client_auth_method("none", _authenticate_none)
    server.register_token_generator("default", _generate_token)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True), BrokerOpenIDCode()])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(BrokerRevocation)
    server.register_endpoint(BrokerIntrospection)
    server.register_extension(BrokerIssuer())
    app.extensions["broker.oauth_server"] = server
    return server


def current_user() -> EndUser | None:
    uid = login_session.current_user_id()
    return EndUser(uid=uid, auth_time=login_session.auth_time()) if uid else None
