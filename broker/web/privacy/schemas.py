"""The privacy center API's response bodies (apps held, grants, deletion, export lines, receipts)."""

from __future__ import annotations

from marshmallow import fields, validate

from broker.web.oauth.schemas import JwkSchema
from broker.web.shared.schemas import (
    Number,
    _Body,
    _Ignored,
    _int,
    _str,
    _strings,
)

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
    label_drift = fields.List(
        fields.String(),
        metadata={"description": "fields the app asks for that its data label does not declare"},
    )
    received_beyond_label = fields.List(
        fields.String(),
        metadata={"description": "fields the ledger shows the app received beyond its data label"},
    )
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
    status = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "the app's status: active, or suspended by the operator"},
    )
    installed_by = _str()
    installed_by_name = fields.String(required=True, allow_none=True)
    installed_at = fields.Integer(required=True, allow_none=True)
    last_disclosure_at = Number(required=True, allow_none=True)


class NoticeSchema(_Body):
    """A decision of one of the person's organizations about an app receiving members' data."""

    id = _str(metadata={"description": "stream id"})
    org_id = _str()
    org_name = _str()
    app = _str(metadata={"description": "client id"})
    app_name = _str()
    what = _str(validate=validate.OneOf(["installed", "enabled", "disabled", "updated", "removed"]))
    scopes = _strings()
    fields_ = fields.List(
        fields.Nested(DescribedSchema), required=True, data_key="fields", attribute="fields"
    )
    who = _str(metadata={"description": "user id of the admin who decided, or 'platform'"})
    who_name = _str(metadata={"description": "their nickname; empty for the platform"})
    when = _int(metadata={"description": "unix seconds"})
    new = fields.Boolean(required=True, metadata={"description": "not yet shown on the privacy center page"})


class NoticeListSchema(_Body):
    notices = fields.List(fields.Nested(NoticeSchema), required=True)


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
    address = fields.String(
        metadata={"description": "the controller's postal address (BROKER_RECEIPT_ADDRESS)"}
    )
    phone = fields.String(metadata={"description": "the controller's telephone (BROKER_RECEIPT_PHONE)"})
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
    piiPrincipalId = _str(metadata={"description": "the pairwise user id the app knows the person by"})
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
    retention_days = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(allow_none=True),
        metadata={"description": "per field, how long the app said it keeps it (its data label)"},
    )
    consent_version = _str()


class ReceiptSchema(_Body):
    """``?format=json``: the receipt's payload (not verified here) and the JWS itself."""

    receipt = fields.Nested(ConsentReceiptSchema, required=True)
    jws = _str()


# -- sessions and password ---------------------------------------------------------------------


class SessionSchema(_Body):
    """One signed-in browser session of the person (never the cookie that would let one use it)."""

    id = _str(metadata={"description": "public session id (the OIDC `sid` claim)"})
    device = _str(metadata={"description": "browser and system, read from the User-Agent"})
    user_agent = _str()
    address = _str(metadata={"description": "client address at sign-in"})
    created_at = _int(metadata={"description": "unix seconds of the sign-in"})
    last_used_at = _int(metadata={"description": "unix seconds, to the minute"})
    current = fields.Boolean(required=True, metadata={"description": "the session making this request"})


class SessionListSchema(_Body):
    """Most recently used first."""

    sessions = fields.List(fields.Nested(SessionSchema), required=True)


class SessionsEndedSchema(_Body):
    """How many sessions ended; ``signed_out`` is true when this request's session was one of them."""

    ended = _int()
    signed_out = fields.Boolean(required=True)


class PasswordChangedSchema(_Body):
    """The password changed; every other session of the person ended."""

    changed = fields.Boolean(required=True, validate=validate.OneOf([True]))
    sessions_ended = _int()


class PasswordChangeSchema(_Ignored):
    current_password = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    new_password = fields.String(
        required=True,
        validate=validate.Length(min=8, max=1024, error="expected 8 to 1024 characters"),
    )
