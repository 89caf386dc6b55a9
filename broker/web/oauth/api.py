"""Protocol endpoints: authorize, token, revoke, introspect, discovery (RFC 8414 / OIDC), JWKS.

Authlib validates every grant; these views add what it leaves to the server: request hygiene
(duplicated or oversized parameters, mixed client credentials), login and consent interactions,
RFC 9207 ``iss`` on every authorization response, and the HTTP headers of RFC 6749 5.1 / CORS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session
from werkzeug.wrappers import Response

from broker.consent import org_policy
from broker.consent.grants import get_grant
from broker.core import ids
from broker.core.catalog import Catalog
from broker.errors import BrokerError
from broker.extensions import csrf
from broker.web.interactions import consent as consent_page
from broker.web.interactions import i18n
from broker.web.interactions import session as login_session
from broker.web.oauth import cors
from broker.web.oauth.models import Client, load_client, load_grant
from broker.web.oauth.server import EndUser, create_server
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.claims import OIDC_CLAIMS
from broker.web.shared.errors import BASIC_CHALLENGE, oauth_error
from broker.web.shared.errors import page as error_page
from broker.web.shared.openapi import TEXT, documented, dump
from broker.web.shared.responses import no_store

bp = Blueprint("oauth", __name__)

MAX_PARAM_CHARS = 2048
MAX_PARAMS = 30
FORCED_LOGIN_KEY = "oauth_forced_login"


@bp.record_once
def _setup(state: Any) -> None:
    create_server(state.app)


def _server() -> Any:
    return current_app.extensions["broker.oauth_server"]


# --- authorization endpoint ------------------------------------------------------------------


def _error_page(detail: str) -> Response:
    """Unknown client or unregistered redirect URI: never redirect (RFC 6749 4.1.2.1)."""
    return error_page(BrokerError(detail))


def _redirect(redirect_uri: str, params: dict[str, str | None]) -> Response:
    """An authorization response, success or error, always with ``iss`` (RFC 9207 section 2)."""
    pairs = [(k, v) for k, v in params.items() if v is not None]
    pairs.append(("iss", web.settings().issuer))
    response = redirect(add_params_to_uri(redirect_uri, pairs), code=302)
    no_store(response)
    return response


def _error_redirect(redirect_uri: str, state: str | None, error: str, description: str) -> Response:
    return _redirect(redirect_uri, {"error": error, "error_description": description, "state": state})


def policy_refused_page(app_name: str, refusal: Any, redirect_uri: str, state: str | None) -> Response:
    """A clear page (403) for a person whose organization refuses the app, with a way back to the
    app that tells it ``access_denied``."""
    back = add_params_to_uri(
        redirect_uri,
        [
            (k, v)
            for k, v in (
                ("error", "access_denied"),
                ("error_description", "The person's organization does not allow this app."),
                ("state", state),
                ("iss", web.settings().issuer),
            )
            if v is not None
        ],
    )
    html = render_template("interactions/app_refused.html", app_name=app_name, refusal=refusal, back=back)
    return no_store(Response(html, status=403, mimetype="text/html"))


def _query_without(name: str) -> str:
    pairs = [(k, v) for k, v in request.args.items(multi=True) if k != name]
    return urlencode(pairs)


def _return_to() -> str:
    """The authorize request as a local path, without our own ``interaction`` parameter."""
    return f"{request.path}?{_query_without('interaction')}"


def _fingerprint(return_to: str) -> str:
    return hashlib.sha256(return_to.encode()).hexdigest()[:32]


def _resolve_client() -> tuple[Client, str] | Response:
    args = request.args
    if len(args.getlist("client_id")) != 1:
        return _error_page("The request must name exactly one client_id.")
    client = load_client(web.store(), args["client_id"])
    if client is None or client.status != "active":
        return _error_page("This app is unknown or suspended.")
    uris = args.getlist("redirect_uri")
    if len(uris) > 1:
        return _error_page("The request has more than one redirect_uri.")
    redirect_uri = uris[0] if uris else client.get_default_redirect_uri()
    if not redirect_uri or "#" in redirect_uri or not client.check_redirect_uri(redirect_uri):
        return _error_page("The redirect_uri is not registered for this app.")
    return client, redirect_uri


def _description(exc: OAuth2Error) -> str:
    """An authorization error's description in plain words (Authlib's for an unsupported
    response_type repeats its own message inside another)."""
    if exc.error == "unsupported_response_type":
        return "Only response_type=code is supported (the authorization code flow, with PKCE)."
    return str(exc.get_error_description() or exc.error)


@bp.get("/oauth/authorize")
@documented(
    status=302,
    query=rs.AuthorizeQuery,
    security=[],
    responses={
        400: (
            "Unknown client or unregistered redirect_uri: an error page, never a redirect",
            {"text/html": TEXT},
        ),
        403: (
            "The signed-in person's organization refuses this mini-program: a page saying which and "
            "why, with a link back to the app carrying error=access_denied",
            {"text/html": TEXT},
        ),
    },
)
def authorize() -> Response:
    """Authorization endpoint: redirects to the client (code or error, always with iss), or to sign-in
    or consent first."""
    resolved = _resolve_client()
    if isinstance(resolved, Response):
        return resolved
    client, redirect_uri = resolved
    args = request.args
    states = args.getlist("state")
    state = states[0] if len(states) == 1 and len(states[0]) <= MAX_PARAM_CHARS else None

    # Request hygiene (RFC 6749 3.1: parameters MUST NOT be repeated).
    for name in args:
        if len(args.getlist(name)) > 1:
            return _error_redirect(redirect_uri, state, "invalid_request", f"Parameter '{name}' is repeated.")
    if len(args) > MAX_PARAMS or any(len(k) > 64 or len(v) > MAX_PARAM_CHARS for k, v in args.items()):
        return _error_redirect(redirect_uri, state, "invalid_request", "A parameter is too large.")

    if "request" in args:
        return _error_redirect(
            redirect_uri, state, "request_not_supported", "Request objects are not supported."
        )
    if "request_uri" in args:
        return _error_redirect(
            redirect_uri, state, "request_uri_not_supported", "request_uri is not supported."
        )
    if args.get("response_mode", "query") != "query":
        return _error_redirect(
            redirect_uri, state, "invalid_request", "Only response_mode=query is supported."
        )

    prompts = set(args.get("prompt", "").split())
    if "none" in prompts and len(prompts) > 1:
        return _error_redirect(redirect_uri, state, "invalid_request", "prompt=none cannot be combined.")
    max_age: int | None = None
    if "max_age" in args:
        try:
            max_age = int(args["max_age"])
            if max_age < 0:
                raise ValueError
        except ValueError:
            return _error_redirect(redirect_uri, state, "invalid_request", "max_age must be a whole number.")

    uid = login_session.current_user_id()
    auth_time = login_session.auth_time()
    end_user = EndUser(uid=uid, auth_time=auth_time, client_id=client.client_id) if uid else None

    # Authlib validates response_type, scope, PKCE and nonce; errors go back to the client.
    try:
        grant = _server().get_consent_grant(end_user=end_user)
    except OAuth2Error as exc:
        if exc.redirect_uri:
            return _error_redirect(redirect_uri, state, exc.error, _description(exc))
        return _error_page(_description(exc))

    # Login (OIDC Core 3.1.2.3): none, forced by prompt=login, or too old for max_age.
    return_to = _return_to()
    fingerprint = _fingerprint(return_to)
    if end_user is None:
        if "none" in prompts:
            return _error_redirect(redirect_uri, state, "login_required", "No one is signed in.")
        return redirect(login_session.login_url(return_to), code=302)
    # A forced login is remembered as [started, auth_time before it]; the login that satisfies it is a
    # newer one, so the same request coming back from the login page does not loop.
    forced: dict[str, list[int | None]] = dict(session.get(FORCED_LOGIN_KEY) or {})
    marker = forced.get(fingerprint)
    satisfied = (
        isinstance(marker, list)
        and auth_time is not None
        and auth_time >= (marker[0] or 0)
        and auth_time != marker[1]
    )
    too_old = max_age is not None and (auth_time is None or time.time() - auth_time > max_age)
    if ("login" in prompts or too_old) and not satisfied:
        if "none" in prompts:
            return _error_redirect(redirect_uri, state, "login_required", "A fresh sign-in is required.")
        forced[fingerprint] = [int(time.time()), auth_time]
        session[FORCED_LOGIN_KEY] = dict(list(forced.items())[-10:])
        return redirect(login_session.login_url(return_to, force=True), code=302)

    # Organization policy: a member's organizations may keep mini-programs out (issue 13, item 3).
    if client.kind == "mini_program":
        refusal = org_policy.refusal_for_member(web.store(), end_user.uid, client.client_id)
        if refusal is not None:
            _finish(forced, fingerprint)
            return policy_refused_page(client.name, refusal, redirect_uri, state)

    # Consent (interaction contract with the consent page at /consent/<iid>).
    requested = (grant.request.scope or "").split()
    interactions: dict[str, Any] = dict(session.get("interactions") or {})
    result = None
    iid = args.get("interaction")
    if iid and isinstance(interactions.get(iid), dict):
        record = interactions[iid]
        if record.get("client_id") == client.client_id and record.get("return_to") == return_to:
            result = record.get("result")
            if result in ("approved", "denied"):
                interactions.pop(iid)
                session["interactions"] = interactions
    if result == "denied":
        _finish(forced, fingerprint)
        return _error_redirect(redirect_uri, state, "access_denied", "The person declined.")

    person_grant = load_grant(web.store(), client.client_id, end_user.uid)
    covered = person_grant is not None and set(requested) <= person_grant.scopes
    # Consent that follows the text (issue 14, item 6): a scope whose text changed since the person
    # agreed is asked again.
    changed = []
    if person_grant is not None and result != "approved":
        stored = get_grant(web.store(), client.client_id, end_user.uid)
        changed = [s for s in consent_page.changed_scopes(web.catalog(), stored or {}) if s in requested]
    if result != "approved" and (not covered or changed or "consent" in prompts):
        if "none" in prompts:
            return _error_redirect(redirect_uri, state, "consent_required", "The person has not consented.")
        new_iid = secrets.token_urlsafe(16)
        interactions[new_iid] = {"client_id": client.client_id, "scopes": requested, "return_to": return_to,
                                 "result": None, "reconsent": changed}  # fmt: skip
        session["interactions"] = dict(list(interactions.items())[-10:])
        return redirect(f"/consent/{new_iid}", code=302)

    if person_grant is None:
        _finish(forced, fingerprint)
        return _error_redirect(redirect_uri, state, "access_denied", "No consent was recorded.")
    allowed = [s for s in requested if s in person_grant.scopes]
    if not allowed:
        _finish(forced, fingerprint)
        return _error_redirect(
            redirect_uri, state, "access_denied", "None of the requested scopes was granted."
        )
    end_user.grant_id = person_grant.id
    end_user.scopes = " ".join(allowed)
    end_user.sid = login_session.sid_for(client.client_id)  # the id_token's sid (back-channel logout)
    _finish(forced, fingerprint)
    response: Response = _server().create_authorization_response(grant_user=end_user, grant=grant)
    no_store(response)
    return response


def _finish(forced: dict[str, list[int | None]], fingerprint: str) -> None:
    if fingerprint in forced:
        forced.pop(fingerprint)
        session[FORCED_LOGIN_KEY] = forced


# --- token, revocation, introspection --------------------------------------------------------


def _basic_client_id() -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    from urllib.parse import unquote

    return unquote(decoded.partition(":")[0])


def _precheck() -> Response | None:
    """RFC 6749 2.3 / 3.2: one authentication method per request, well-formed, no repeats."""
    header = request.headers.get("Authorization")
    if header is not None:
        if not header.lower().startswith("basic "):
            return oauth_error("invalid_client", "Only HTTP Basic client authentication is accepted.")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return oauth_error("invalid_client", "The Basic authorization header is malformed.")
        if ":" not in decoded or not decoded.partition(":")[0]:
            return oauth_error("invalid_client", "The Basic authorization header is malformed.")
        if "client_secret" in request.form:
            return oauth_error("invalid_request", "Client credentials were sent in both header and body.")
        body_id = request.form.get("client_id")
        if body_id is not None and body_id != _basic_client_id():
            return oauth_error("invalid_request", "client_id in the body differs from the Basic header.")
    for name in request.form:
        if len(request.form.getlist(name)) > 1:
            return oauth_error("invalid_request", f"Parameter '{name}' is repeated.")
        if len(request.form[name]) > MAX_PARAM_CHARS:
            return oauth_error("invalid_request", f"Parameter '{name}' is too large.")
    if request.mimetype != "application/x-www-form-urlencoded":
        return oauth_error("invalid_request", "The body must be application/x-www-form-urlencoded.")
    return None


def _finish_protocol_response(response: Response) -> Response:
    no_store(response)
    if response.status_code in (400, 401) and response.is_json:
        body = response.get_json(silent=True) or {}
        if body.get("error") == "invalid_client":
            response.status_code = 401
            response.headers["WWW-Authenticate"] = BASIC_CHALLENGE
        elif body.get("error") == "unsupported_token_type":
            # RFC 7009 2.2.1 errors follow RFC 6749 5.2 (400); Authlib answers 401 here.
            response.status_code = 400
            response.headers.pop("WWW-Authenticate", None)
    return response


def _token_cors(response: Response) -> Response:
    # A public client's refresh may name its client only through the refresh token (server.py).
    named = ids.client_of(request.form.get("refresh_token") or "", ids.REFRESH_PREFIX)
    client_id = request.form.get("client_id") or _basic_client_id() or named or ""
    store = web.store()
    if request.method == "OPTIONS":
        return cors.apply(response, lambda: cors.any_app_origins(store), methods="POST, OPTIONS")
    return cors.apply(response, lambda: cors.client_origins(store, client_id), methods="POST, OPTIONS")


@bp.route("/oauth/token", methods=["POST", "OPTIONS"])
@csrf.exempt
@documented(
    rs.TokenSchema,
    body=rs.TokenRequestSchema,
    body_type="application/x-www-form-urlencoded",
    errors={400: "RFC 6749 5.2 error", 401: "invalid_client (WWW-Authenticate: Basic)"},
    security=[{"clientSecretBasic": []}, {}],
)
def token() -> Response:
    """Token endpoint: authorization_code (PKCE), refresh_token (rotated), client_credentials (org)."""
    if request.method == "OPTIONS":
        return _token_cors(Response(status=204))
    early = _precheck()
    if early is not None:
        return _token_cors(early)
    response = _server().create_token_response()
    return _token_cors(_finish_protocol_response(response))


@bp.post("/oauth/revoke")
@csrf.exempt
@documented(
    rs.RevokedSchema,
    body=rs.RevocationRequestSchema,
    body_type="application/x-www-form-urlencoded",
    errors={400: "RFC 6749 5.2 error", 401: "invalid_client (WWW-Authenticate: Basic)"},
    security=[{"clientSecretBasic": []}, {}],
)
def revoke() -> Response:
    """RFC 7009 revocation of the client's own token (a refresh token takes its whole chain)."""
    early = _precheck()
    if early is not None:
        return early
    return _finish_protocol_response(_server().create_endpoint_response("revocation"))


@bp.post("/oauth/introspect")
@csrf.exempt
@documented(
    rs.IntrospectionSchema,
    body=rs.IntrospectionRequestSchema,
    body_type="application/x-www-form-urlencoded",
    errors={400: "RFC 6749 5.2 error", 401: "invalid_client (WWW-Authenticate: Basic)"},
)
def introspect() -> Response:
    """RFC 7662 introspection of a confidential client's own token."""
    early = _precheck()
    if early is not None:
        return early
    return _finish_protocol_response(_server().create_endpoint_response("introspection"))


# --- discovery and keys ----------------------------------------------------------------------

# What an id_token carries besides ``sub`` (BrokerOpenIDCode in broker.web.oauth.server).
ID_TOKEN_CLAIMS = ("iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash")


def claims_supported(catalog: Catalog) -> list[str]:
    """Every claim the broker may release (OIDC Discovery 1.0 section 3): the id_token's, then
    userinfo's, i.e. the shareable fields of the catalog's individual scopes under their OIDC
    names (``user_id`` is ``sub``, ``avatar`` is ``picture``)."""
    released = catalog.fields_of(catalog.scope_names("individual"))
    from_catalog = sorted({OIDC_CLAIMS.get(field, field) for field in released} - {"sub"})
    return ["sub", *ID_TOKEN_CLAIMS, *from_catalog]


def metadata() -> dict[str, Any]:
    """What this server supports, and nothing else (RFC 8414, OIDC Discovery 1.0)."""
    issuer = web.settings().issuer
    catalog = web.catalog()
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "scopes_supported": catalog.scope_names(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "claims_supported": claims_supported(catalog),
        "prompt_values_supported": ["none", "login", "consent"],
        # BCP 47 tags of the page translations (broker/translations): en, zh-Hans
        "ui_locales_supported": [i18n.HTML_LANG[locale] for locale in i18n.LOCALES],
        "service_documentation": f"{issuer}/docs",  # the API reference built from /openapi.json
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        # OIDC RP-Initiated Logout 1.0 and Back-Channel Logout 1.0 (broker.web.interactions.logout)
        "end_session_endpoint": f"{issuer}/end-session",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


def _public_json(payload: dict[str, Any]) -> Response:
    response = jsonify(payload)
    response.headers["Cache-Control"] = "public, max-age=300"
    store = web.store()
    return cors.apply(response, lambda: cors.any_app_origins(store), methods="GET, OPTIONS")


@bp.route("/.well-known/openid-configuration", methods=["GET", "OPTIONS"])
@bp.route("/.well-known/oauth-authorization-server", methods=["GET", "OPTIONS"])
@documented(rs.DiscoverySchema)
def discovery() -> Response:
    """Server metadata (OpenID Connect Discovery 1.0, RFC 8414)."""
    return _public_json(dump(rs.DiscoverySchema, metadata()))


@bp.route("/oauth/jwks", methods=["GET", "OPTIONS"])
@documented(media={"application/jwk-set+json": rs.JwksSchema}, security=[])
def jwks() -> Response:
    """The public keys id_tokens are signed with (ES256). Only those: the ledger's Ed25519 keys,
    which OIDC clients have no use for, are at /ledger/v1/keys."""
    response = _public_json(dump(rs.JwksSchema, web.keyring().public_jwks()))
    response.mimetype = "application/jwk-set+json"
    return response
