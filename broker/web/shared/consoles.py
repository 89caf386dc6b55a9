"""What the developer and admin consoles share: the CSRF-token endpoint, JSON bodies, form validation.

Both consoles serve pages (HTML, forms, 303 after POST) and the same operations as JSON under a
``/v1/`` path of their own, authenticated by the session cookie. CSRF stays on for both: a JSON
client reads a token from ``GET <console>/v1/csrf-token`` and sends it in the ``X-CSRFToken``
header (flask-wtf accepts it there), so a cross-site page can never drive the API with the cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, request
from flask_wtf.csrf import generate_csrf
from marshmallow import Schema, ValidationError

from broker import errors
from broker.apps import registry as apps_svc
from broker.web.interactions import session as login_session
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import Reply, documented
from broker.web.shared.responses import NO_STORE


def install_handlers(bp: Blueprint, api_prefixes: tuple[str, ...]) -> None:
    """The console's ``utc`` template filter and its CSRF-token endpoint (errors are rendered by
    ``broker.web.shared.errors``, JSON on the API paths since they are in ``context.JSON_PREFIXES``)."""

    @bp.app_template_filter("utc")
    def utc(ts: Any) -> str:
        try:
            return datetime.fromtimestamp(int(float(ts)), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError, OverflowError, OSError):
            return ""

    @bp.get(f"{api_prefixes[0]}csrf-token")
    @documented(rs.CsrfTokenSchema)
    def csrf_token_view() -> Reply:
        """The token to send as ``X-CSRFToken`` on writes (bound to this session)."""
        login_session.login_required()
        return {"csrf_token": generate_csrf(), "header": "X-CSRFToken"}, 200, NO_STORE


def json_payload() -> dict[str, Any]:
    if not request.is_json:
        raise errors.UnsupportedMediaType(
            f"expected Content-Type: application/json, got {request.mimetype or 'none'!r}"
        )
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise errors.ValidationFailed("the body must be a JSON object")
    return payload


def load(
    schema: Schema,
    payload: dict[str, Any],
    semantic: Callable[[dict[str, Any]], dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    """Schema problems plus semantic problems of the fields that passed, in one 400 naming each field."""
    problems: dict[str, list[str]] = {}
    try:
        data: dict[str, Any] = schema.load(payload)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        for name, value in messages.items():
            problems[str(name)] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        data = exc.valid_data if isinstance(exc.valid_data, dict) else {}
    if semantic is not None:
        for name, found in semantic(data).items():
            if name not in problems:
                problems[name] = found
    if problems:
        apps_svc.raise_problems(problems)
    return data


def lines(raw: str) -> list[str]:
    """A textarea with one item per line: blank lines and surrounding spaces dropped."""
    return [line.strip() for line in raw.splitlines() if line.strip()]


def app_disclosures(client_id: str) -> dict[str, Any]:
    """The newest disclosure records made to one app (field names, never values)."""
    from broker.ledger import reading

    page = reading.records_for_app(web.store(), client_id, reading.Filters(newest_first=True), None, 50)
    key = web.settings().pairwise_key  # a developer sees the ids their app knows (issue 14, item 1)
    return {
        "available": True,
        "items": [reading.as_seen_by_app(_marked(entry), key) for entry in page.records],
    }


def org_disclosures(org_id: str) -> dict[str, Any]:
    """The newest records about the org's members made through the org's installations."""
    from broker.ledger import reading

    page = reading.records_for_org(web.store(), org_id, reading.Filters(newest_first=True), None, 50)
    return {"available": True, "items": [_marked(entry) for entry in page.records]}


def _marked(entry: dict[str, Any]) -> dict[str, Any]:
    """The record, with ``"delivered": false`` when the request was refused (it is not a disclosure)."""
    record: dict[str, Any] = entry["record"]
    return record if entry.get("delivered", True) else {**record, "delivered": False}


def app_deliveries(client_id: str) -> dict[str, Any]:
    """Webhook delivery attempts, newest first, plus the dead letters."""
    from broker.events import webhooks

    return {
        "available": True,
        "status": webhooks.delivery_status(web.store(), client_id),
        "items": webhooks.recent_attempts(web.store(), client_id, 50),
        "dead": webhooks.dead_letters(web.store(), client_id, 50),
    }
