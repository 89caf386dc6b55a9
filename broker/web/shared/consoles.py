"""What the developer and admin consoles share: sign-in, JSON problems, form validation.

Both consoles serve pages (HTML, forms, 303 after POST) and the same operations as JSON under a
``/v1/`` path of their own, authenticated by the session cookie. CSRF stays on for both: a JSON
client reads a token from ``GET <console>/v1/csrf-token`` and sends it in the ``X-CSRFToken``
header (flask-wtf accepts it there), so a cross-site page can never drive the API with the cookie.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, redirect, request
from flask_wtf.csrf import CSRFError, generate_csrf
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from broker import errors
from broker.apps import registry as apps_svc
from broker.runtime import log_storage_failure
from broker.web.interactions import session as login_session
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import documented

log = logging.getLogger("broker.web.shared.consoles")


class _SignIn(Exception):
    """A page needs a signed-in person: answered with a redirect to the login page."""


def is_api(api_prefixes: tuple[str, ...]) -> bool:
    return request.path.startswith(api_prefixes)


def problem(status: int, code: str, detail: str, body: dict[str, Any] | None = None) -> Response:
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
    response.headers["Cache-Control"] = "no-store"
    return response


def install_handlers(bp: Blueprint, api_prefixes: tuple[str, ...]) -> None:
    """JSON problems for the console's API paths whatever the Accept header; pages as usual."""

    def render(status: int, code: str, detail: str, body: dict[str, Any] | None = None) -> Response:
        if is_api(api_prefixes):
            return problem(status, code, detail, body)
        return web.render_error(status, code, detail, body)

    @bp.errorhandler(_SignIn)
    def sign_in(exc: _SignIn) -> Any:
        return redirect(login_session.login_url(request.full_path.rstrip("?")), code=303)

    @bp.errorhandler(errors.BrokerError)
    def broker_error(exc: errors.BrokerError) -> Response:
        return render(exc.status, exc.code, exc.detail, exc.body())

    @bp.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        return render(
            400,
            "csrf_failed",
            "The form expired or was not sent by this site. Go back, reload the page and try again.",
        )

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            status, "invalid_request"
        )
        response = render(status, code, exc.description or exc.name)
        allow = exc.get_response().headers.get("Allow")
        if status == 405 and allow:
            response.headers["Allow"] = allow
        return response

    @bp.errorhandler(redis.RedisError)
    def storage_error(exc: redis.RedisError) -> Response:
        log_storage_failure(log, f"console request {web.request_id()}", exc)
        response = render(
            503, "temporarily_unavailable", "The service is temporarily unavailable. Try again shortly."
        )
        response.headers["Retry-After"] = "1"
        return response

    @bp.app_template_filter("utc")
    def utc(ts: Any) -> str:
        try:
            return datetime.fromtimestamp(int(float(ts)), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError, OverflowError, OSError):
            return ""

    @bp.get(f"{api_prefixes[0]}csrf-token")
    @documented(rs.CsrfTokenSchema)
    def csrf_token_view() -> Response:
        """The token to send as ``X-CSRFToken`` on writes (bound to this session)."""
        require_user(api_prefixes)
        response = jsonify({"csrf_token": generate_csrf(), "header": "X-CSRFToken"})
        response.headers["Cache-Control"] = "no-store"
        return response


def require_user(api_prefixes: tuple[str, ...]) -> str:
    """The signed-in person; pages redirect to the login page, APIs answer 401."""
    uid = login_session.current_user_id()
    if uid is None:
        if is_api(api_prefixes):
            raise errors.Unauthenticated("sign in first: this API is authenticated by the session cookie")
        raise _SignIn()
    return uid


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

    page = reading.records_for_app(web.store(), client_id, reading.Filters(), None, 50)
    return {"available": True, "items": [_marked(entry) for entry in page.records]}


def org_disclosures(org_id: str) -> dict[str, Any]:
    """The newest records about the org's members made through the org's installations."""
    from broker.ledger import reading

    page = reading.records_for_org(web.store(), org_id, reading.Filters(), None, 50)
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
