"""The ledger's response bodies (checkpoints, proofs, records, disclosure pages)."""

from __future__ import annotations

from marshmallow import fields, validate

from broker.web.shared.schemas import (
    Number,
    _Body,
    _int,
    _str,
    _strings,
)

# -- ledger ------------------------------------------------------------------------------------------


class CheckpointSchema(_Body):
    """A signed tree head: ``checkpoint`` is a compact JWS (``alg`` EdDSA, i.e. Ed25519; keys at
    /ledger/v1/keys). Earlier releases wrote ``alg`` Ed25519: same signature, still verifies."""

    log = _str(metadata={"description": "the log this checkpoint signs (legacy: releases before 0.3)"})
    checkpoint = _str(metadata={"description": "compact JWS of the payload below"})
    tree_size = _int(validate=validate.Range(min=0))
    root_hash = _str(metadata={"description": "base64 SHA-256 Merkle root (RFC 9162)"})
    timestamp = _int(metadata={"description": "unix seconds"})
    kid = _str()


class LogSchema(_Body):
    """One of the ledger's independent RFC 9162 logs."""

    log = _str(metadata={"description": "its name, used in /ledger/v1/logs/<log>/..."})
    tree_size = _int(validate=validate.Range(min=0))
    checkpoint = fields.Nested(CheckpointSchema, required=True, allow_none=True)


class LogListSchema(_Body):
    logs = fields.List(fields.Nested(LogSchema), required=True)


class CheckpointPageSchema(_Body):
    checkpoints = fields.List(fields.Nested(CheckpointSchema), required=True)
    next = fields.Integer(required=True, allow_none=True, metadata={"description": "start of the next page"})
    total = _int()


class ConsistencyProofSchema(_Body):
    """RFC 9162 2.1.4 consistency proof between the trees of ``first`` and ``second`` leaves."""

    log = _str()
    first = _int()
    second = _int()
    consistency_proof = _strings(metadata={"description": "base64 hashes"})


class LeafSchema(_Body):
    """A leaf hash (never the record) and its inclusion proof against a tree size."""

    log = _str()
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

    index = _int(metadata={"description": "position in its Merkle log"})
    log = fields.String(metadata={"description": "the log it is in (absent in the legacy log)"})
    id = _str()
    time = Number(required=True, metadata={"description": "unix seconds"})
    app = _str(metadata={"description": "client id of the receiving app"})
    developer = _str(metadata={"description": "the app's developer (user id; empty if unknown)"})
    audience = _str(validate=validate.OneOf(["individual", "organization"]))
    org = fields.String(required=True, allow_none=True, metadata={"description": "organization token"})
    person = fields.String(
        metadata={"description": "the platform's user id of the person (the person's and admins' views only)"}
    )
    user_id = fields.String(
        metadata={
            "description": "in a developer's views instead of person: the pairwise id the app knows the "
            "person by (the record's leaf_hash and proof still verify; its content names the platform id)"
        }
    )
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
    """A record with its leaf hash and its inclusion proof against its log's latest checkpoint."""

    log = _str(metadata={"description": "the log the record is in"})
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
    checkpoint = fields.Nested(
        CheckpointSchema,
        required=True,
        allow_none=True,
        metadata={"description": "a person's view: the latest checkpoint of the person's log"},
    )
    checkpoints = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(CheckpointSchema),
        required=True,
        metadata={"description": "log -> its latest checkpoint, for every log of the view"},
    )
