"""Marshmallow schemas of every JSON response, for the OpenAPI document (broker.web.shared.openapi).

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

from marshmallow import EXCLUDE, INCLUDE, Schema, fields, validate

from broker.core.catalog import Catalog
from broker.core.ids import CLIENT_ID, USER_ID

ROLES = ("owner", "admin", "sub_admin", "member")
PERMISSIONS = ("apps.manage", "members.manage", "disclosures.read")


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


# -- OAuth / OpenID Connect ----------------------------------------------------------------------------


class DiscoverySchema(_Body):
    """OpenID Provider / RFC 8414 authorization server metadata: what this server supports."""

    issuer = _str()
    authorization_endpoint = _str()
    token_endpoint = _str()
    jwks_uri = _str()
    userinfo_endpoint = _str()
    revocation_endpoint = _str()
    introspection_endpoint = _str()
    scopes_supported = _strings()
    response_types_supported = _strings()
    response_modes_supported = _strings()
    grant_types_supported = _strings()
    token_endpoint_auth_methods_supported = _strings()
    revocation_endpoint_auth_methods_supported = _strings()
    introspection_endpoint_auth_methods_supported = _strings()
    code_challenge_methods_supported = _strings()
    subject_types_supported = _strings()
    id_token_signing_alg_values_supported = _strings()
    claims_supported = _strings()
    prompt_values_supported = _strings()
    ui_locales_supported = _strings()
    claims_parameter_supported = fields.Boolean(required=True)
    request_parameter_supported = fields.Boolean(required=True)
    request_uri_parameter_supported = fields.Boolean(required=True)
    authorization_response_iss_parameter_supported = fields.Boolean(required=True)


class JwkSchema(_Body):
    """A public JSON Web Key (RFC 7517): EC P-256 for id_tokens, OKP Ed25519 for the ledger."""

    kty = _str(validate=validate.OneOf(["EC", "OKP", "RSA"]))
    kid = _str()
    alg = fields.String()
    use = fields.String()
    crv = fields.String()
    x = fields.String()
    y = fields.String()
    n = fields.String()
    e = fields.String()


class JwksSchema(_Body):
    """A JWK Set (RFC 7517 section 5): public keys only."""

    keys = fields.List(fields.Nested(JwkSchema), required=True)


class TokenSchema(_Body):
    """RFC 6749 section 5.1 access token response."""

    access_token = _str()
    token_type = _str(validate=validate.OneOf(["Bearer"]))
    expires_in = _int(metadata={"description": "seconds"})
    scope = _str(metadata={"description": "the scopes granted, space-separated"})
    refresh_token = fields.String(metadata={"description": "not for client_credentials"})
    id_token = fields.String(metadata={"description": "authorization_code with openid: an ES256 JWT"})


class IntrospectionSchema(_Body):
    """RFC 7662 introspection response: only ``active`` when the token is not (or no longer) valid."""

    active = fields.Boolean(required=True)
    scope = fields.String()
    client_id = fields.String()
    token_type = fields.String(validate=validate.OneOf(["Bearer", "refresh_token"]))
    exp = fields.Integer()
    iat = fields.Integer()
    iss = fields.String()
    sub = fields.String(metadata={"description": "person's token: the pairwise user id"})
    org_id = fields.String(metadata={"description": "organization token: the organization"})


class RevokedSchema(_Body):
    """RFC 7009: an empty JSON object, also for an unknown or someone else's token."""


# -- ledger ------------------------------------------------------------------------------------------


class CheckpointSchema(_Body):
    """A signed tree head: ``checkpoint`` is a compact JWS (Ed25519, keys at /ledger/v1/keys)."""

    checkpoint = _str(metadata={"description": "compact JWS of the payload below"})
    tree_size = _int(validate=validate.Range(min=0))
    root_hash = _str(metadata={"description": "base64 SHA-256 Merkle root (RFC 9162)"})
    timestamp = _int(metadata={"description": "unix seconds"})
    kid = _str()


class CheckpointPageSchema(_Body):
    checkpoints = fields.List(fields.Nested(CheckpointSchema), required=True)
    next = fields.Integer(required=True, allow_none=True, metadata={"description": "start of the next page"})
    total = _int()


class ConsistencyProofSchema(_Body):
    """RFC 9162 2.1.4 consistency proof between the trees of ``first`` and ``second`` leaves."""

    first = _int()
    second = _int()
    consistency_proof = _strings(metadata={"description": "base64 hashes"})


class LeafSchema(_Body):
    """A leaf hash (never the record) and its inclusion proof against a tree size."""

    index = _int()
    tree_size = _int()
    leaf_hash = _str()
    inclusion_proof = _strings(metadata={"description": "base64 hashes"})
    checkpoint = fields.Nested(
        CheckpointSchema,
        required=True,
        allow_none=True,
        metadata={"description": "the checkpoint of that tree size, if it is the latest"},
    )


class DisclosureRecordSchema(_Body):
    """One disclosure: which app received which fields (names, never values) about whom, and when."""

    index = _int(metadata={"description": "position in the Merkle log"})
    id = _str()
    time = Number(required=True, metadata={"description": "unix seconds"})
    app = _str(metadata={"description": "client id of the receiving app"})
    developer = _str(metadata={"description": "the app's developer (user id; empty if unknown)"})
    audience = _str(validate=validate.OneOf(["individual", "organization"]))
    org = fields.String(required=True, allow_none=True, metadata={"description": "organization token"})
    person = _str(metadata={"description": "the internal user id of the person disclosed"})
    grant = fields.String(metadata={"description": "grant or installation id the token was issued under"})
    fields_ = fields.List(fields.String(), required=True, data_key="fields", attribute="fields")
    endpoint = _str()
    request_id = _str()
    catalog_version = _str()
    corrects = fields.String(
        metadata={"description": "a correction record: the id of the record that was not delivered"}
    )
    corrects_index = fields.Integer(metadata={"description": "a correction record: that record's index"})
    delivered = fields.Boolean(metadata={"description": "false on a correction record"})


class LedgerEntrySchema(_Body):
    """A record with its leaf hash and its inclusion proof against the latest checkpoint."""

    index = _int()
    record = fields.Nested(DisclosureRecordSchema, required=True)
    leaf_hash = _str()
    inclusion_proof = fields.List(
        fields.String(),
        required=True,
        allow_none=True,
        metadata={"description": "null until the next checkpoint covers the record"},
    )
    tree_size = fields.Integer(required=True, allow_none=True)
    delivered = fields.Boolean(
        required=True,
        metadata={
            "description": "false when the request was refused after its record was written "
            "(e.g. replicas did not confirm it): no data left, so this is not a disclosure"
        },
    )
    correction = fields.Boolean(
        required=True, metadata={"description": "this record corrects an earlier one (not delivered)"}
    )
    corrected_by = fields.Integer(
        required=True, allow_none=True, metadata={"description": "index of the correction record, if any"}
    )


class DisclosurePageSchema(_Body):
    """One page of a ledger view (``?format=json``); follow ``next_cursor`` for the next one."""

    records = fields.List(fields.Nested(LedgerEntrySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)
    checkpoint = fields.Nested(CheckpointSchema, required=True, allow_none=True)


# -- privacy center ----------------------------------------------------------------------------------


class CsrfTokenSchema(_Body):
    """The token to send in the ``X-CSRFToken`` header of writes (bound to the session)."""

    csrf_token = _str()
    header = _str(validate=validate.OneOf(["X-CSRFToken"]))


class DescribedSchema(_Body):
    """A scope or field with its description in the person's language."""

    name = _str()
    description = _str()


class PersonAppSchema(_Body):
    """An app holding a grant from the person: what it holds and when it last received data."""

    client_id = _str()
    name = _str()
    kind = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, allow_none=True)
    developer_id = fields.String(required=True, allow_none=True)
    developer = fields.String(required=True, allow_none=True, metadata={"description": "nickname"})
    privacy_policy_url = _str()
    grant_id = _str()
    scopes = fields.List(fields.Nested(DescribedSchema), required=True)
    fields_ = fields.List(
        fields.Nested(DescribedSchema), required=True, data_key="fields", attribute="fields"
    )
    purpose = _str()
    granted_at = fields.Integer(required=True, allow_none=True)
    updated_at = fields.Integer(required=True, allow_none=True)
    last_disclosure_at = Number(required=True, allow_none=True)
    pending_disclosures = fields.Integer(
        required=True, allow_none=True, metadata={"description": "records not yet in the ledger"}
    )


class PersonOrgAppSchema(_Body):
    """An org app receiving the person's basic fields through one of their organizations."""

    org_id = _str()
    org_name = _str()
    client_id = _str()
    name = _str()
    developer = fields.String(required=True, allow_none=True)
    scopes = fields.List(fields.Nested(DescribedSchema), required=True)
    fields_ = fields.List(
        fields.Nested(DescribedSchema), required=True, data_key="fields", attribute="fields"
    )
    enabled = fields.Boolean(required=True)
    installed_by = _str()
    installed_by_name = fields.String(required=True, allow_none=True)
    installed_at = fields.Integer(required=True, allow_none=True)
    last_disclosure_at = Number(required=True, allow_none=True)


class PersonAppsSchema(_Body):
    apps = fields.List(fields.Nested(PersonAppSchema), required=True)
    org_apps = fields.List(fields.Nested(PersonOrgAppSchema), required=True)


class GrantSummarySchema(_Body):
    id = _str()
    scopes = _strings()
    fields_ = _strings(data_key="fields", attribute="fields")
    updated_at = _int()


class GrantChangeSchema(_Body):
    """The grant after a withdrawal; ``grant`` is null when nothing is left."""

    client_id = _str()
    grant = fields.Nested(GrantSummarySchema, required=True, allow_none=True)


class NotifiedSchema(_Body):
    client_id = _str()
    org_id = fields.String(required=True, allow_none=True)


class AccountDeletedSchema(_Body):
    """What the deletion did: grants ended, apps told (by the id each knows), organizations left."""

    deleted = fields.Boolean(required=True, validate=validate.OneOf([True]))
    revoked = _strings()
    notified = fields.List(fields.Nested(NotifiedSchema), required=True)
    orgs_left = _strings()


class ExportLineSchema(_Body):
    """One line of the NDJSON export; ``data`` is the profile, a membership, grant, receipt or
    disclosure record."""

    type = _str(validate=validate.OneOf(["profile", "membership", "grant", "receipt", "disclosure"]))
    data = fields.Dict(required=True)


class ReceiptSummarySchema(_Body):
    id = _str()
    time = _int(metadata={"description": "unix seconds"})
    app = _str()
    app_name = _str()
    action = _str(validate=validate.OneOf(["granted", "changed", "revoked"]))


class ReceiptPageSchema(_Body):
    """Newest first; follow ``next_cursor`` for the next page."""

    receipts = fields.List(fields.Nested(ReceiptSummarySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class PiiControllerSchema(_Body):
    piiController = _str()
    onBehalf = fields.Boolean(required=True)
    contact = _str()
    piiControllerUrl = _str()
    role = _str(validate=validate.OneOf(["controller", "recipient"]))
    email = fields.String(metadata={"description": "the controller's"})
    client_id = fields.String(metadata={"description": "the recipient app's"})
    developer = fields.String(metadata={"description": "the recipient app's"})


class ReceiptPurposeSchema(_Body):
    purpose = _str()
    purposeCategory = _strings()
    consentType = _str()
    piiCategory = _strings()
    primaryPurpose = fields.Boolean(required=True)
    termination = _str()
    thirdPartyDisclosure = fields.Boolean(required=True)
    thirdPartyName = _str()


class ReceiptServiceSchema(_Body):
    service = _str()
    purposes = fields.List(fields.Nested(ReceiptPurposeSchema), required=True)


class ConsentReceiptSchema(_Body):
    """Kantara Consent Receipt (v1.1 fields) plus the broker's grant details; signed as a JWS."""

    version = _str()
    jurisdiction = _str()
    consentTimestamp = _int()
    collectionMethod = _str()
    consentReceiptID = _str()
    publicKey = fields.Nested(JwkSchema, required=True)
    language = _str()
    piiPrincipalId = _str()
    piiControllers = fields.List(fields.Nested(PiiControllerSchema), required=True)
    policyUrl = _str()
    services = fields.List(fields.Nested(ReceiptServiceSchema), required=True)
    sensitive = fields.Boolean(required=True)
    spiCat = _strings()
    action = _str(validate=validate.OneOf(["granted", "changed", "revoked"]))
    client_id = _str()
    grant_id = _str()
    scopes = _strings()
    fields_ = _strings(data_key="fields", attribute="fields")
    consent_version = _str()


class ReceiptSchema(_Body):
    """``?format=json``: the receipt's payload (not verified here) and the JWS itself."""

    receipt = fields.Nested(ConsentReceiptSchema, required=True)
    jws = _str()


# -- apps and installations (platform API, developer and admin consoles) ------------------------------


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
    status = _str(validate=validate.OneOf(["active", "suspended"]))
    created_at = fields.Integer(required=True, allow_none=True)
    updated_at = fields.Integer(required=True, allow_none=True)


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


class InstallationSchema(_Body):
    """An App Center app added to one organization, with the scopes the admin chose."""

    id = _str()
    client_id = _str()
    org_id = _str()
    scopes = _strings()
    enabled = fields.Boolean(required=True)
    installed_by = _str(metadata={"description": "user id of the admin, or empty"})
    created_at = _int()
    updated_at = _int()


class InstallationListSchema(_Body):
    installations = fields.List(fields.Nested(InstallationSchema), required=True)


# -- admin console -----------------------------------------------------------------------------------


class AdminOrgSchema(_Body):
    """The organization and the signed-in person's role in it."""

    org_id = _str()
    name = _str()
    role = _str(validate=validate.OneOf(ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)), required=True)
    members = _int()


class CenterAppSchema(AppSchema):
    """An App Center app and whether this organization has added it."""

    installed = fields.Boolean(required=True)


class AppCenterSchema(_Body):
    apps = fields.List(fields.Nested(CenterAppSchema), required=True)


class InstallationDetailSchema(InstallationSchema):
    """The installation and the member fields that flow to the app under its scopes."""

    fields_ = _strings(data_key="fields", attribute="fields")


class ImpactSchema(_Body):
    """What a disable, enable or remove would change, before doing it."""

    action = _str(validate=validate.OneOf(["disable", "enable", "remove"]))
    client_id = _str()
    org_id = _str()
    members = _int()
    enabled = fields.Boolean(required=True)
    change = _str(validate=validate.OneOf(["start", "stop", "none"]))
    fields_ = _strings(data_key="fields", attribute="fields")
    revokes_tokens = fields.Boolean(required=True)


class AppRequestSchema(_Body):
    """A member's request that the admins add an App Center app."""

    id = _str()
    org_id = _str()
    client_id = _str()
    requester = _str()
    reason = _str()
    status = _str(validate=validate.OneOf(["pending", "approved", "denied"]))
    decided_by = fields.String(required=True, allow_none=True)
    decision_reason = fields.String(required=True, allow_none=True)
    created_at = _int()
    decided_at = fields.Integer(required=True, allow_none=True)


class AppRequestListSchema(_Body):
    requests = fields.List(fields.Nested(AppRequestSchema), required=True)


class MemberRoleSchema(_Body):
    """A member's role in the organization."""

    user_id = _str()
    role = _str(validate=validate.OneOf(ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)), required=True)


class MemberRoleListSchema(_Body):
    """Every member with their role, in join order."""

    roles = fields.List(fields.Nested(MemberRoleSchema), required=True)


class AuditEntrySchema(_Body):
    id = _str(metadata={"description": "stream id"})
    who = _str(metadata={"description": "user id"})
    what = _str(metadata={"description": "e.g. installation.installed, sub_admin.appointed"})
    when = _int(metadata={"description": "unix seconds"})
    details = fields.Dict(required=True)


class AuditTrailSchema(_Body):
    """Newest first."""

    audit = fields.List(fields.Nested(AuditEntrySchema), required=True)


class DisbandedSchema(_Body):
    org_id = _str()
    disbanded = fields.Boolean(required=True, validate=validate.OneOf([True]))
    removed_installations = _strings()


# -- developer console -------------------------------------------------------------------------------


class SecretMetaSchema(_Body):
    """A live client secret's times (never the secret or its hash)."""

    created = _int()
    expires = fields.Integer(required=True, allow_none=True, metadata={"description": "null: no expiry"})


class AppInstallationSummarySchema(_Body):
    org_id = _str()
    enabled = fields.Boolean(required=True)
    scopes = _strings()


class RecentDisclosuresSchema(_Body):
    available = fields.Boolean(required=True)
    items = fields.List(fields.Nested(DisclosureRecordSchema), required=True)


class DeliveryStatusSchema(_Body):
    """The head event's delivery state (all values are strings, as stored)."""

    state = fields.String(validate=validate.OneOf(["idle", "retrying", "undeliverable"]))
    event_id = fields.String()
    stream_id = fields.String()
    attempts = fields.String()
    last_status = fields.String()
    last_error = fields.String()
    next_attempt_at = fields.String()
    last_attempt_at = fields.String()
    last_success_at = fields.String()
    last_delivered_event = fields.String()


class DeliveryAttemptSchema(_Body):
    """One delivery attempt (all values are strings, as stored)."""

    id = _str()
    event = _str()
    attempt = _str()
    status = _str(metadata={"description": "the HTTP status, or empty"})
    error = _str()
    outcome = _str(validate=validate.OneOf(["ok", "retry", "dead"]))
    time = _str()


class EventSchema(_Body):
    """A webhook event; a malformed outbox entry is kept as ``{"id", "raw"}``."""

    id = _str()
    type = fields.String()
    time = Number()
    app = fields.String()
    data = fields.Dict()
    raw = fields.String()


class DeadLetterSchema(_Body):
    event = fields.Nested(EventSchema, required=True)
    attempts = _int()
    last_status = _str()
    last_error = _str()
    dead_at = _int()


class DeliveriesSchema(_Body):
    available = fields.Boolean(required=True)
    status = fields.Nested(DeliveryStatusSchema, required=True)
    items = fields.List(fields.Nested(DeliveryAttemptSchema), required=True)
    dead = fields.List(fields.Nested(DeadLetterSchema), required=True)


class DeveloperAppSchema(AppSchema):
    """The app with its grants, installations, secret times, recent disclosures and deliveries."""

    grant_count = _int()
    installations = fields.List(fields.Nested(AppInstallationSummarySchema), required=True)
    client_secrets = fields.List(fields.Nested(SecretMetaSchema), required=True)
    disclosures = fields.Nested(RecentDisclosuresSchema, required=True)
    deliveries = fields.Nested(DeliveriesSchema, required=True)


class RedeliverySchema(_Body):
    client_id = _str()
    event_id = _str()
    queued = fields.Boolean(required=True)


# -- platform directory ------------------------------------------------------------------------------


class UserSchema(_Body):
    """A person in the directory (never the password hash)."""

    id = _str()
    username = _str()
    nickname = fields.String()
    avatar = fields.String()
    name = fields.String()
    email = fields.String()
    mobile = fields.String()
    status = _str(validate=validate.OneOf(["active"]))
    created_at = _int()
    updated_at = fields.Integer()


class UserOrgsSchema(_Body):
    orgs = _strings(metadata={"description": "organization ids"})


class OrgSchema(_Body):
    id = _str()
    name = _str()
    allow_member_mini_programs = fields.Boolean(required=True)
    created_at = _int()
    updated_at = fields.Integer()


class PlatformMemberSchema(_Body):
    user_id = _str()
    seq = _int(metadata={"description": "join order; pass the last one as ?after="})
    role = fields.String(validate=validate.OneOf(ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)))


class PlatformMemberPageSchema(_Body):
    members = fields.List(fields.Nested(PlatformMemberSchema), required=True)
    next_cursor = fields.Integer(required=True, allow_none=True, metadata={"description": "?after="})


class MembershipSchema(_Body):
    user_id = _str()
    org_id = _str()
    role = _str(validate=validate.OneOf(ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)), required=True)


class ImportCountsSchema(_Body):
    users = _int()
    orgs = _int()
    memberships = _int()


class ImportResultSchema(_Body):
    imported = fields.Nested(ImportCountsSchema, required=True)


# -- data API: built from the scope catalog ----------------------------------------------------------


def _profile(name: str, catalog: Catalog, audience: str, required_scope: str, rename: dict[str, str]) -> type:
    """The fields the catalog can disclose to this audience (each string or null); the fields of the
    scope the endpoint requires that the catalog marks required are always present."""
    scopes = [s for s in catalog.scopes.values() if s.audience == audience]
    names = [f for f in catalog.fields if catalog.fields[f].shareable and any(f in s.fields for s in scopes)]
    always = set()
    if required_scope in catalog.scopes:
        always = {f for f in catalog.scopes[required_scope].fields if catalog.fields[f].required}
        if audience == "organization":  # no consent page: every field of the required scope flows
            always = set(catalog.scopes[required_scope].fields)
    cls = _Body.from_dict(
        {
            rename.get(f, f): fields.String(
                required=f in always,
                allow_none=f != "user_id",  # the pairwise id is computed; the rest is read as stored
                metadata={"description": catalog.fields[f].description["en"]},
            )
            for f in names
        },
        name=name,
    )
    cls.__doc__ = {
        "Me": "The person as this app may see them: the pairwise user_id, then only the granted fields.",
        "UserInfo": "OIDC userinfo: the pairwise subject, then only the claims the grant allows.",
        "MemberProfile": "A member as this app may see them: the fields of the installation's scopes.",
    }[name.removesuffix("Schema")]
    return cls


def data_schemas(catalog: Catalog) -> dict[str, type[Schema]]:
    """Me, UserInfo, MemberProfile and MemberPage for this deployment's catalog."""
    from broker.web.shared.claims import MEMBER_SCOPE, OIDC_CLAIMS

    me = _profile("MeSchema", catalog, "individual", "openid", {})
    userinfo = _profile("UserInfoSchema", catalog, "individual", "openid", OIDC_CLAIMS)
    member = _profile("MemberProfileSchema", catalog, "organization", MEMBER_SCOPE, {})

    class MemberPageSchema(_Body):
        """One page of an org's members, each filtered to the installation's fields."""

        members = fields.List(fields.Nested(member), required=True)
        next_cursor = fields.String(required=True, allow_none=True)

    return {"Me": me, "UserInfo": userinfo, "MemberProfile": member, "MemberPage": MemberPageSchema}


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


class ImportLineSchema(Schema):
    """One NDJSON line of a directory import: ``type`` and the fields of UserCreate, OrgCreate or
    MembershipImport."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=validate.OneOf(["user", "org", "membership"]))
