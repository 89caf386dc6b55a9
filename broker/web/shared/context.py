"""Small request-scoped helpers shared by every blueprint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from flask import current_app, g, request
from marshmallow import Schema
from marshmallow import ValidationError as MarshmallowValidationError

from broker.errors import UnsupportedMediaType, ValidationFailed

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.core.catalog import Catalog
    from broker.core.keyring import Keyring
    from broker.storage.store import Store

# Paths whose errors are always JSON (broker.web.shared.errors); everything else negotiates on Accept.
# The session APIs of the consoles and the privacy center are here too: same cookie as their pages,
# problem JSON for their errors.
JSON_PREFIXES = (
    "/v1/",
    "/internal/",
    "/oauth/",
    "/.well-known/",
    "/api/",
    "/healthz",
    "/readyz",
    "/jwks",
    "/privacy/v1/",
    "/admin/v1/",
    "/developer/v1/",
    "/ledger/v1/",
)


def settings() -> Settings:
    return cast("Settings", current_app.extensions["broker.settings"])


def store() -> Store:
    return cast("Store", current_app.extensions["broker.store"])


def catalog() -> Catalog:
    return cast("Catalog", current_app.extensions["broker.catalog"])


def keyring() -> Keyring:
    return cast("Keyring", current_app.extensions["broker.keyring"])


def request_id() -> str:
    """This request's id in logs and ``X-Request-Id`` (the caller's, when it sent a sane one)."""
    return cast(str, g.get("request_id", "-"))


def record_request_id() -> str:
    """The ``request_id`` of this request's disclosure records: always generated here, so unique
    (records and their voids are keyed by it; a caller's X-Request-Id may repeat)."""
    return cast(str, g.get("record_request_id") or request_id())


def note_disclosure(client_id: str, records: int) -> None:
    """The gate committed ``records`` disclosure records for this request: if the response turns out
    to be an error (no data left), they are voided (broker.web.shared.hooks, ``void_refused_disclosures``)."""
    g.disclosure_records = (client_id, record_request_id(), records)


def wants_json() -> bool:
    if request.path.startswith(JSON_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def client_address() -> str:
    if settings().trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return request.remote_addr or "-"


def json_body(schema: Schema) -> Any:
    """Parse and validate a JSON request body; 415 for another content type, 400 naming each field."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"expected Content-Type: application/json, got {request.mimetype or 'none'!r}"
        )
    payload = request.get_json(silent=True)
    if payload is None:
        raise ValidationFailed("the body is not valid JSON")
    return load(schema, payload)


def load(schema: Schema, payload: Any) -> Any:
    try:
        return schema.load(payload)
    except MarshmallowValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ValidationFailed("some fields are invalid", fields=messages) from None
