"""The developer console API's response bodies (and the one request body it owns: which dead letters)."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

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
    org_name = _str(metadata={"description": "the organization's name (empty once it is gone)"})
    enabled = fields.Boolean(required=True)
    scopes = _strings()
    fields_ = _strings(
        data_key="fields",
        attribute="fields",
        metadata={"description": "the member fields the organization's admin chose: what the app receives"},
    )


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
    """One delivery attempt, or a replay or purge of dead letters (all values are strings, as stored)."""

    id = _str()
    event = _str(metadata={"description": "the event id; for a replay or purge of several, `<n> events`"})
    attempt = _str()
    status = _str(metadata={"description": "the HTTP status, or empty"})
    error = _str()
    outcome = _str(validate=validate.OneOf(["ok", "retry", "dead", "replayed", "purged"]))
    time = _str()
    by = fields.String(metadata={"description": "replay and purge only: who asked (`developer:<id>`, `cli`)"})


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


MAX_EVENT_IDS = 1000  # the same bound as broker.events.webhooks.MAX_IDS (the web never imports events here)


class DeadLetterSelectionSchema(Schema):
    """Which dead letters to replay or purge: ``{"event_ids": [...]}`` or ``{"all": true}``."""

    class Meta:
        unknown = RAISE

    event_ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=200)),
        validate=validate.Length(min=1, max=MAX_EVENT_IDS),
        metadata={"description": "event ids of this app's dead letters; all or nothing"},
    )
    all = fields.Boolean(metadata={"description": "true: every dead letter of the app"})

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if ("event_ids" in data) == bool(data.get("all")):
            raise ValidationError('send "event_ids" (a list) or "all": true, not both')


class DeadLettersReplayedSchema(_Body):
    client_id = _str()
    replayed = _strings(metadata={"description": "event ids queued again, in queue order"})


class DeadLettersPurgedSchema(_Body):
    client_id = _str()
    purged = _strings(metadata={"description": "event ids deleted"})
