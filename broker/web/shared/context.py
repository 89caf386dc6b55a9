"""Small request-scoped helpers shared by every blueprint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from flask import Response, current_app, g, jsonify, render_template, request
from marshmallow import Schema
from marshmallow import ValidationError as MarshmallowValidationError

from broker.errors import UnsupportedMediaType, ValidationFailed

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.core.catalog import Catalog
    from broker.core.keyring import Keyring
    from broker.storage.store import Store

# Paths whose errors are always JSON; everything else negotiates on Accept. The session APIs are here
# too: their blueprints render most errors themselves, but not all (a body over MAX_CONTENT_LENGTH is
# refused before any view runs; the receipt views let Redis errors through to the app's handler).
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
    return cast(str, g.get("request_id", "-"))


def note_disclosure(client_id: str, records: int) -> None:
    """The gate committed ``records`` disclosure records for this request: if the response turns out
    to be an error (no data left), they are voided (broker.app, ``void_refused_disclosures``)."""
    g.disclosure_records = (client_id, request_id(), records)


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


def render_error(status: int, code: str, detail: str, body: dict[str, Any] | None = None) -> Response:
    """The one error renderer: problem JSON (RFC 9457) for APIs, a readable page in browsers."""
    if wants_json():
        payload = body or {
            "type": "about:blank",
            "title": detail,
            "status": status,
            "error": code,
            "detail": detail,
        }
        response = jsonify(payload)
        response.status_code = status
        response.mimetype = "application/problem+json"
        return response
    html = render_template("error.html", status=status, code=code, detail=detail)
    return Response(html, status=status, mimetype="text/html")
