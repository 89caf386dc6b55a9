"""The developer console API's response bodies."""

from __future__ import annotations

from marshmallow import fields, validate

from broker.web.ledger.schemas import DisclosureRecordSchema
from broker.web.shared.schemas import (
    AppSchema,
    Number,
    _Body,
    _int,
    _str,
    _strings,
)

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
    previous_webhook_secret_expires = fields.Integer(
        allow_none=True,
        metadata={
            "description": "unix seconds until which deliveries also carry the previous secret's signature"
        },
    )
    disclosures = fields.Nested(RecentDisclosuresSchema, required=True)
    deliveries = fields.Nested(DeliveriesSchema, required=True)


class RedeliverySchema(_Body):
    client_id = _str()
    event_id = _str()
    queued = fields.Boolean(required=True)
