"""The schemas every audience shares: the base of the response schemas, errors, apps and installations,
and the query strings and OAuth form bodies. Each audience keeps its own in its schemas.py.

The views return plain data and ``@documented`` (broker.web.shared.openapi) dumps it through the
schema documented for the status, so what goes out is the schema's dump and cannot drift from it
(the exceptions, bodies built by Authlib and streamed NDJSON/CSV/JWS, are listed there). Request
bodies are the schemas the views load; the few query strings the views parse by hand are described
by the ``*Query`` schemas at the end, and the OAuth form bodies (parsed by Authlib) by the
``*Request`` schemas.

``required=True`` marks members that are always present; ``allow_none=True`` members that may be
``null``. The document leaves objects open (``additionalProperties: true``): clients must ignore
members they do not know, so members can be added without a new version.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, INCLUDE, RAISE, Schema, fields, validate

from broker.core import permissions
from broker.core.ids import CLIENT_ID, USER_ID

ROLES = ("owner", "admin", "sub_admin", "member")
PERMISSIONS = permissions.GRANTABLE  # one vocabulary: broker.core.permissions


class _Body(Schema):
    """Base of the response schemas: open objects (see the module docstring)."""

    class Meta:
        unknown = INCLUDE


class Number(fields.Float):
    """A JSON number, dumped as it is (an int stays an int: ``5``, not ``5.0``)."""

    def _serialize(
        self, value: object, attr: str | None, obj: object, **kwargs: object
    ) -> str | float | None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        return super()._serialize(value, attr, obj, **kwargs)


def _str(**kwargs: object) -> fields.String:
    return fields.String(required=True, **kwargs)  # type: ignore[arg-type]


def _int(**kwargs: object) -> fields.Integer:
    return fields.Integer(required=True, **kwargs)  # type: ignore[arg-type]


def _strings(**kwargs: object) -> fields.List:
    return fields.List(fields.String(), required=True, **kwargs)  # type: ignore[arg-type]


# -- errors ------------------------------------------------------------------------------------------


class ProblemSchema(_Body):
    """RFC 9457 problem document: the body of every error outside the OAuth protocol endpoints."""

    type = _str(metadata={"description": "always about:blank"})
    title = _str()
    status = _int(metadata={"description": "the HTTP status"})
    error = _str(metadata={"description": "machine-readable code, e.g. invalid_request, not_found"})
    detail = _str(metadata={"description": "what went wrong, for a person"})
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": "invalid input: each bad field (or import line) with its problems"},
    )
    scope = fields.String(metadata={"description": "insufficient_scope: the scope the request needs"})
    grant_url = fields.String(metadata={"description": "insufficient_scope: where that scope is granted"})
    field = fields.String(metadata={"description": "conflict: the field whose value is taken"})


class OAuthErrorSchema(_Body):
    """RFC 6749 section 5.2 error body of the token, revocation and introspection endpoints."""

    error = _str(metadata={"description": "e.g. invalid_request, invalid_client, invalid_grant"})
    error_description = fields.String()


# -- apps and installations (platform API, developer and admin consoles) ------------------------------


class DeletionRequestSchema(_Body):
    """A request to an app to delete what it received about a person (a ``deletion.requested`` event)."""

    id = _str()
    client_id = _str()
    fields_ = fields.List(fields.String(), required=True, data_key="fields", attribute="fields")
    reason = _str(validate=validate.OneOf(["grant_revoked", "scope_withdrawn"]))
    sent_at = _int(metadata={"description": "unix seconds"})
    acked_at = fields.Integer(
        required=True, allow_none=True, metadata={"description": "when the app acknowledged"}
    )


class DeletionRequestListSchema(_Body):
    deletion_requests = fields.List(fields.Nested(DeletionRequestSchema), required=True)


class FieldExplanationSchema(_Body):
    field = _str()
    released = fields.Boolean(required=True)
    reasons = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "codes: requested, granted, installed, never_shared, not_requested, "
            "scope_not_granted, unticked, separate_consent_not_given, not_in_installation, "
            "app_suspended, switched_off, no_grant, not_installed, org_policy"
        },
    )


class ExplanationSchema(_Body):
    """Every catalog field: released to the app or not, and why (the gate's own rule)."""

    client_id = _str()
    org_id = fields.String(metadata={"description": "an installation's organization"})
    fields_ = fields.List(
        fields.Nested(FieldExplanationSchema), required=True, data_key="fields", attribute="fields"
    )


class LabelEntryOutSchema(_Body):
    field = _str()
    purpose = _str()
    retention_days = _int()


class AppSchema(_Body):
    """A registered app as the APIs show it (never a secret). Members the stored record lacks are null."""

    client_id = _str()
    name = _str()
    description = fields.String(required=True, allow_none=True)
    kind = _str(validate=validate.OneOf(["org_app", "mini_program"]))
    client_type = _str(validate=validate.OneOf(["confidential", "public"]))
    developer_id = _str()
    contact = fields.String(required=True, allow_none=True)
    privacy_policy_url = fields.String(required=True, allow_none=True)
    redirect_uris = _strings()
    scopes = _strings()
    webhook_url = fields.String(required=True, allow_none=True)
    post_logout_redirect_uris = fields.List(
        fields.String(), allow_none=True, metadata={"description": "OIDC RP-Initiated Logout"}
    )
    backchannel_logout_uri = fields.String(
        allow_none=True, metadata={"description": "OIDC Back-Channel Logout"}
    )
    terms_of_service_url = fields.String(metadata={"description": "the developer's terms of service"})
    data_label = fields.List(
        fields.Nested(LabelEntryOutSchema),
        metadata={"description": "the fields the app says it uses, why and how long it keeps them"},
    )
    label_drift = fields.List(
        fields.String(),
        metadata={"description": "fields its scopes reach that its label does not declare (flagged)"},
    )
    received_beyond_label = fields.List(
        fields.String(),
        metadata={
            "description": "fields the ledger shows it received that its label does not declare (flagged)"
        },
    )
    status = _str(validate=validate.OneOf(["active", "suspended"]))
    review = fields.String(
        validate=validate.OneOf(["pending", "approved", "rejected"]),
        metadata={"description": "the operator's review: App Centers list only approved org apps"},
    )
    review_reason = fields.String(metadata={"description": "why the operator rejected the app"})
    created_at = fields.Integer(required=True, allow_none=True)
    updated_at = fields.Integer(required=True, allow_none=True)


class AppReviewSchema(_Body):
    """The operator's decision on an org app."""

    class Meta:
        unknown = RAISE

    decision = _str(validate=validate.OneOf(["approve", "reject"]))
    reason = fields.String(
        load_default="", validate=validate.Length(max=1000), metadata={"description": "required to reject"}
    )


class AppListSchema(_Body):
    apps = fields.List(fields.Nested(AppSchema), required=True)


class NewAppSchema(AppSchema):
    """The registered app with its secrets: shown this once, only hashes are kept."""

    webhook_secret = _str()
    client_secret = fields.String(metadata={"description": "confidential clients only"})


class SecretRotatedSchema(_Body):
    """A new client secret (shown once); the previous one works until the time given."""

    client_id = _str()
    client_secret = _str()
    previous_secret_expires_at = _int(metadata={"description": "unix seconds"})


class WebhookSecretRotatedSchema(_Body):
    """A new webhook signing secret (shown once); both sign deliveries while the overlap lasts."""

    client_id = _str()
    webhook_secret = _str()


class SecretsRevokedSchema(_Body):
    """Retiring client secrets ended now: only the current secret authenticates the app."""

    client_id = _str()
    revoked = _int(metadata={"description": "how many previous secrets were still valid and now are not"})


class WebhookSecretRevokedSchema(_Body):
    """The rotated-out webhook secret no longer signs deliveries: the next one carries one signature."""

    client_id = _str()
    revoked = fields.Boolean(
        required=True, metadata={"description": "false when no previous secret was still in use"}
    )


def member_field_choice() -> fields.List:
    """The request field an admin or the platform names member fields with (issue 13, item 2)."""
    return fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        validate=validate.Length(max=50),
        data_key="fields",
        attribute="fields",  # declared as ``fields_``: a Schema's ``fields`` is its own
        metadata={
            "description": "the member fields the app receives, within the chosen scopes (the app's id for "
            "each member always flows); left out: every field of the scopes when installing, the fields "
            "chosen before (and every field of a scope added) when changing the scopes"
        },
    )


class InstallationSchema(_Body):
    """An App Center app added to one organization, with the scopes the admin chose."""

    id = _str()
    client_id = _str()
    org_id = _str()
    scopes = _strings()
    fields_ = _strings(
        data_key="fields",
        attribute="fields",
        metadata={"description": "the member fields it receives: the admin's choice within the scopes"},
    )
    enabled = fields.Boolean(required=True)
    installed_by = _str(metadata={"description": "user id of the admin, or empty"})
    created_at = _int()
    updated_at = _int()
    departments = fields.List(
        fields.String(),
        allow_none=True,
        metadata={
            "description": "departments it is limited to (and their sub-departments); null: the whole org"
        },
    )
    covered_members = fields.Integer(metadata={"description": "how many members it covers"})


class InstallationListSchema(_Body):
    installations = fields.List(fields.Nested(InstallationSchema), required=True)


# -- query strings the views parse by hand, and the OAuth form bodies ---------------------------------


class _Query(Schema):
    """Documentation of query parameters (the views check them; see each view)."""


def _limit(default: int, maximum: int) -> fields.Integer:
    return fields.Integer(
        load_default=default,
        validate=validate.Range(min=1, max=maximum),
        metadata={"description": "page size"},
    )


_CURSOR = fields.String(metadata={"description": "next_cursor of the previous page"})


class CheckpointsQuery(_Query):
    start = fields.Integer(
        load_default=0, validate=validate.Range(min=0), metadata={"description": "position"}
    )
    limit = _limit(100, 100)


class ConsistencyQuery(_Query):
    first = fields.Integer(required=True, validate=validate.Range(min=1, max=10**15 - 1))
    second = fields.Integer(required=True, validate=validate.Range(min=1, max=10**15 - 1))


class LeafQuery(_Query):
    tree_size = fields.Integer(
        validate=validate.Range(min=1, max=10**15 - 1),
        metadata={"description": "default: the latest checkpoint's"},
    )


class DisclosureQuery(_Query):
    """Filters, paging and export format of a ledger view."""

    since = fields.String(metadata={"description": "unix seconds or ISO-8601 (UTC if no offset)"})
    until = fields.String(metadata={"description": "unix seconds or ISO-8601; not before since"})
    app = fields.String(validate=validate.Regexp(CLIENT_ID), metadata={"description": "only this app"})
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "ndjson", "csv"]),
        metadata={"description": "ndjson and csv stream every matching record (no paging)"},
    )
    order = fields.String(
        load_default="oldest",
        validate=validate.OneOf(["oldest", "newest"]),
        metadata={"description": "oldest first (the ledger's order, the default) or newest first"},
    )
    limit = _limit(50, 100)
    cursor = _CURSOR


class DisclosureByPersonQuery(DisclosureQuery):
    person = fields.String(validate=validate.Regexp(USER_ID), metadata={"description": "only this person"})


class ReceiptListQuery(_Query):
    limit = _limit(50, 100)
    cursor = _CURSOR


class ReceiptQuery(_Query):
    format = fields.String(
        load_default="jws",
        validate=validate.OneOf(["jws", "json"]),
        metadata={"description": "jws: the signed receipt (application/jose); json: payload and JWS"},
    )


class RequestListQuery(_Query):
    status = fields.String(validate=validate.OneOf(["pending", "approved", "denied"]))


class ImpactQuery(_Query):
    action = fields.String(required=True, validate=validate.OneOf(["disable", "enable", "remove"]))


class AppListQuery(_Query):
    developer_id = fields.String(validate=validate.Regexp(USER_ID), metadata={"description": "only theirs"})
    review = fields.String(
        validate=validate.OneOf(["pending", "approved", "rejected"]),
        metadata={"description": "only org apps in this review state"},
    )
    flagged = fields.Boolean(
        metadata={"description": "true: only apps asking for fields their label does not declare"}
    )


class MemberListQuery(_Query):
    after = fields.Integer(
        validate=validate.Range(min=0, max=2**53),
        metadata={"description": "next_cursor of the previous page"},
    )
    limit = _limit(100, 1000)


class AuthorizeQuery(_Query):
    """The authorization request (RFC 6749 4.1.1, PKCE RFC 7636, OIDC Core 3.1.2.1)."""

    response_type = fields.String(required=True, validate=validate.OneOf(["code"]))
    client_id = fields.String(required=True)
    redirect_uri = fields.String(metadata={"description": "exactly as registered (default: the only one)"})
    scope = fields.String(metadata={"description": "space-separated"})
    state = fields.String(validate=validate.Length(max=2048))
    code_challenge = fields.String(required=True)
    code_challenge_method = fields.String(required=True, validate=validate.OneOf(["S256"]))
    nonce = fields.String()
    prompt = fields.String(metadata={"description": "none, or any of login and consent"})
    max_age = fields.Integer(validate=validate.Range(min=0))
    response_mode = fields.String(validate=validate.OneOf(["query"]))


class _Ignored(Schema):
    """Base of request bodies the view reads member by member: other members are ignored."""

    class Meta:
        unknown = EXCLUDE


class TokenRequestSchema(_Ignored):
    """RFC 6749 token request; client authentication by HTTP Basic (or ``client_secret`` in the
    body; public clients send only ``client_id``)."""

    grant_type = fields.String(
        required=True, validate=validate.OneOf(["authorization_code", "refresh_token", "client_credentials"])
    )
    code = fields.String(metadata={"description": "authorization_code"})
    redirect_uri = fields.String(metadata={"description": "authorization_code"})
    code_verifier = fields.String(metadata={"description": "authorization_code (PKCE)"})
    refresh_token = fields.String(metadata={"description": "refresh_token"})
    scope = fields.String(metadata={"description": "refresh_token (narrower) or client_credentials"})
    org_id = fields.String(metadata={"description": "client_credentials: the organization"})
    client_id = fields.String()
    client_secret = fields.String()


class RevocationRequestSchema(_Ignored):
    """RFC 7009 revocation request."""

    token = fields.String(required=True)
    token_type_hint = fields.String(validate=validate.OneOf(["access_token", "refresh_token"]))
    client_id = fields.String()
    client_secret = fields.String()


class IntrospectionRequestSchema(_Ignored):
    """RFC 7662 introspection request (confidential clients, their own tokens)."""

    token = fields.String(required=True)
    token_type_hint = fields.String(validate=validate.OneOf(["access_token", "refresh_token"]))
    client_id = fields.String()
    client_secret = fields.String()


class AccountDeleteSchema(_Ignored):
    confirm_username = fields.String(required=True, metadata={"description": "your username"})
    password = fields.String(
        metadata={"description": "your password; may be left out within BROKER_REAUTH_SECONDS of signing in"}
    )


class ImportLineSchema(Schema):
    """One NDJSON line of a directory import: ``type`` and the fields of UserCreate, OrgCreate,
    DepartmentImport or MembershipImport."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=validate.OneOf(["user", "org", "department", "membership"]))
