"""The data API for apps: ``/v1/me``, ``/v1/orgs/<org>/members[/<user_id>]`` and OIDC userinfo.

Every route here goes through the disclosure gate (broker.gate.disclosure); none reads profile data
any other way. Bearer tokens in the Authorization header (RFC 6750 2.1) and, for userinfo only, in a
form-encoded POST body (RFC 6750 2.2, what several OIDC clients send by default); never in the query
(RFC 9700 2.4) and never two ways at once (RFC 6750 2: 400 ``invalid_request``).
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request
from marshmallow import RAISE, Schema, ValidationError, validate
from marshmallow import fields as mf
from werkzeug.wrappers import Response

from broker.core import cursors
from broker.errors import BearerError, ClientAuthenticationFailed, MissingToken, NotFound, ValidationFailed
from broker.extensions import csrf
from broker.gate import members as org_members
from broker.gate.disclosure import Gate, InsufficientScope, InvalidToken
from broker.web.oauth import cors
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.claims import MEMBER_SCOPE, OIDC_CLAIMS
from broker.web.shared.openapi import documented
from broker.web.shared.responses import no_store

bp = Blueprint("api", __name__)
csrf.exempt(bp)

# OIDC standard claim names for the catalog's basic fields (OpenID Connect Core 5.1).


def gate() -> Gate:
    return cast(Gate, current_app.extensions["broker.gate"])


class BadBearerRequest(BearerError):
    """RFC 6750 3.1 ``invalid_request``: the token was sent more than one way, or more than once."""

    status = 400
    code = "invalid_request"
    title = "Invalid request"

    def challenge(self) -> dict[str, str]:
        return {"error": "invalid_request", "error_description": self.detail}


def _body_token() -> str | None:
    """The ``access_token`` of a form-encoded POST body (RFC 6750 2.2), or None."""
    if request.method != "POST" or request.mimetype != "application/x-www-form-urlencoded":
        return None
    values = request.form.getlist("access_token")
    if len(values) > 1:
        raise BadBearerRequest("Send the access token once")
    return values[0] if values else None


def bearer_token(*, allow_body: bool = False) -> str:
    header = request.headers.get("Authorization")
    if "access_token" in request.args:
        raise InvalidToken("Send the access token in the Authorization header, not in the URL")
    body = _body_token() if allow_body else None
    if body is not None:
        if header is not None:
            raise BadBearerRequest("Send the access token one way: the Authorization header or the body")
        if not body.strip():
            raise MissingToken("An access token is required: Authorization: Bearer <token>")
        return body.strip()
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken("An access token is required: Authorization: Bearer <token>")
    return token.strip()


def _grant_url(exc: InsufficientScope) -> str:
    issuer = web.settings().issuer
    client_id = exc.extra.pop("client_id", "")
    kind = exc.extra.pop("token_kind", "")
    subject = exc.extra.pop("token_subject", "")
    if kind == "installation":
        # The admin console's page of the installation, with the scope ticked in its scope form.
        return (
            f"{issuer}/admin/orgs/{subject}/apps/{client_id}?{urlencode({'add_scope': exc.extra['scope']})}"
        )
    # A privacy-center page where the person adds the scope to the grant they hold (any client kind;
    # no redirect to the app needed): the app's next token or refresh carries it.
    return f"{issuer}/privacy/apps/{client_id}/scopes/add?{urlencode({'scope': exc.extra['scope']})}"


def _disclose_person(endpoint: str, *, allow_body: bool = False) -> tuple[Any, dict[str, Any]]:
    try:
        disclosed = gate().authorize_and_record(
            bearer_token(allow_body=allow_body),
            kind="grant",
            required_scope="openid",
            endpoint=endpoint,
            request_id=web.record_request_id(),
        )
    except InsufficientScope as exc:
        exc.extra["grant_url"] = _grant_url(exc)
        raise
    web.note_disclosure(disclosed.client_id, 1)
    found = gate().profiles(disclosed, [disclosed.subject])
    if not found:
        raise InvalidToken("The person behind this token no longer exists")
    return disclosed, found[0]


@bp.get("/v1/me")
@documented("Me")
def me() -> Response:
    """The person behind the token, as far as their grant allows (recorded in the ledger first)."""
    _, profile = _disclose_person("GET /v1/me")
    return no_store(jsonify(profile))


@bp.route("/oauth/userinfo", methods=["GET", "POST", "OPTIONS"])
@documented(
    "UserInfo",
    errors={400: "The access token was sent more than one way, or twice (RFC 6750 2: invalid_request)"},
)
def userinfo() -> Response:
    """OIDC userinfo: the same disclosure as /v1/me with standard claim names.

    The token comes in the Authorization header or, with POST, as ``access_token`` in a form-encoded
    body (RFC 6750 2.2), one way only.

    CORS: a preflight is answered for the origins of any registered app; the response itself only
    for the origins of the app the token belongs to (derived from its redirect URIs).
    """
    if request.method == "OPTIONS":
        store = web.store()
        return cors.apply(Response(status=204), lambda: cors.any_app_origins(store))
    disclosed, profile = _disclose_person("userinfo", allow_body=True)
    response = no_store(jsonify({OIDC_CLAIMS.get(k, k): v for k, v in profile.items()}))
    store = web.store()
    return cors.apply(response, lambda: cors.client_origins(store, disclosed.client_id))


class _PageArgs(Schema):
    class Meta:
        unknown = RAISE

    limit = mf.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = mf.String(load_default=None, validate=validate.Length(max=64))


def encode_cursor(seq: int) -> str:
    return cursors.encode(f"m:{seq}")


def decode_cursor(raw: str) -> int:
    try:
        text = cursors.decode(raw)
        kind, _, number = text.partition(":")
        if kind != "m" or not number.isdigit():
            raise ValueError
        return int(number)
    except ValueError:
        raise ValidationFailed(
            "invalid cursor", fields={"cursor": ["Not a cursor returned by this API."]}
        ) from None


def _page_args() -> dict[str, Any]:
    try:
        return cast(dict[str, Any], _PageArgs().load(request.args.to_dict()))
    except ValidationError as exc:
        raise ValidationFailed(
            "some query parameters are invalid", fields=cast(dict[str, Any], exc.messages)
        ) from None


def _org_token(org_id: str, endpoint: str, persons: list[str]) -> Any:
    try:
        disclosed = gate().authorize_and_record(
            bearer_token(),
            kind="installation",
            required_scope=MEMBER_SCOPE,
            endpoint=endpoint,
            request_id=web.record_request_id(),
            org_id=org_id,
            persons=persons,
        )
        web.note_disclosure(disclosed.client_id, len(persons))
        return disclosed
    except InsufficientScope as exc:
        exc.extra["grant_url"] = _grant_url(exc)
        raise


@bp.get("/v1/orgs/<org_id>/members")
@documented("MemberPage", query=_PageArgs, errors={404: "The token is not for this organization"})
def members(org_id: str) -> Response:
    """One page of the organization's members in join order (organization token): all members, or
    only those of the departments the organization chose for this app (and their sub-departments)."""
    args = _page_args()
    after = decode_cursor(args["cursor"]) if args["cursor"] else -1
    bearer_token()  # before any read: a request without a token learns nothing
    # the members this app's installation covers (the whole org, or chosen departments)
    page, more = org_members.page(web.store(), _client_or_none(), org_id, after, args["limit"])
    uids = [uid for uid, _ in page]
    disclosed = _org_token(org_id, "GET /v1/orgs/{org_id}/members", uids)
    body = {
        "members": gate().profiles(disclosed, uids),
        "next_cursor": encode_cursor(page[-1][1]) if more and page else None,
    }
    return no_store(jsonify(body))


@bp.get("/v1/orgs/<org_id>/members/<user_id>")
@documented("MemberProfile", errors={404: "No such member, or the token is not for this organization"})
def member(org_id: str, user_id: str) -> Response:
    """One member by the pairwise user id this app was given (organization token)."""
    bearer_token()
    persons: list[str] = []
    if len(user_id) <= 64:
        # Pairwise ids are only reversible through the map of ids this app was given.
        persons = org_members.by_pairwise_id(web.store(), _client_or_none(), org_id, user_id)
    disclosed = _org_token(org_id, "GET /v1/orgs/{org_id}/members/{user_id}", persons)
    if not persons:
        raise NotFound("No such member")
    found = gate().profiles(disclosed, persons)
    if not found:
        raise NotFound("No such member")
    return no_store(jsonify(found[0]))


def _client_or_none() -> str | None:
    from broker.gate.disclosure import client_of

    try:
        return client_of(bearer_token())
    except InvalidToken:
        return None


# -- deletion requests (issue 14, item 4) ------------------------------------------------------------


def _authenticated_client() -> str:
    """The app calling with HTTP Basic client credentials (a confidential client's secret)."""
    from broker.apps import registry as apps_svc

    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username or not auth.password:
        raise ClientAuthenticationFailed("send your client id and secret with HTTP Basic authentication")
    if not apps_svc.verify_secret(web.store(), web.settings(), auth.username, auth.password):
        raise ClientAuthenticationFailed("unknown client or wrong client secret")
    return str(auth.username)


@bp.post("/v1/deletion-requests/<request_id>/ack")
@csrf.exempt
@documented(
    rs.DeletionRequestSchema,
    security=[{"clientSecretBasic": []}],
    errors={401: "Client authentication failed", 404: "No deletion request with this id for this app"},
)
def acknowledge_deletion(request_id: str) -> Any:
    """The app confirms it deleted what a ``deletion.requested`` event named; the person's privacy
    center shows when. Idempotent: the first acknowledgement's time is kept."""
    from broker.consent import deletion

    client_id = _authenticated_client()
    found = deletion.acknowledge(web.store(), client_id, request_id)
    found.pop("person", None)
    return found, 200, {"Cache-Control": "no-store"}
