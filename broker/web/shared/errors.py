"""The one error renderer (node-oidc-provider's ``shared/error_handler.js``, Authlib's
``rfc6750`` errors): every failure becomes a ``BrokerError`` and leaves in the form its caller reads.

- APIs (``context.JSON_PREFIXES``, or ``Accept: application/json``): RFC 9457 problem JSON.
- Protocol endpoints (token, revocation, introspection): RFC 6749 section 5.2 error JSON
  (``oauth_error``); Authlib renders the errors it raises itself, in the same form.
- Bearer-protected resources: the error's RFC 6750 ``WWW-Authenticate`` challenge (``BearerError``).
- Browsers: a readable page; a page that needs a signed-in person redirects to the login page.

Every error response is ``no-store``. The headers an error needs (``Retry-After`` on 503, the
challenges, ``Allow`` on 405) come from the error itself (``BrokerError.get_headers``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import redis
from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Flask, Response, current_app, jsonify, redirect, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from broker import errors
from broker.ledger.storage import LedgerCorrupt
from broker.runtime import log_storage_failure
from broker.web.shared import context as web
from broker.web.shared.responses import no_store

log = logging.getLogger("broker.web")

STORAGE_DETAIL = "The service is temporarily unavailable. Try again shortly."
CSRF_PAGE_DETAIL = "The form expired or was not sent by this site. Go back, reload the page and try again."
# The session APIs that hand out a CSRF token at ``<prefix>csrf-token``.
_CSRF_API = re.compile(r"^/(privacy|admin|developer)/v1/")
# RFC 6749 5.2: invalid_client is 401 with the challenge of the scheme the client should use.
BASIC_CHALLENGE = 'Basic realm="broker", error="invalid_client"'
_HTTP_ERRORS: dict[int, type[errors.BrokerError]] = {
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
}


def _http_error(exc: HTTPException) -> errors.BrokerError:
    status = exc.code or 500
    if status == 413:
        detail = f"The request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    else:
        detail = exc.description or exc.name
    error = _HTTP_ERRORS.get(status, errors.BrokerError)(detail)
    error.status = status
    allow = exc.get_response().headers.get("Allow") if status == 405 else None
    if allow:
        error.headers["Allow"] = allow
    return error


def _csrf_error() -> errors.BrokerError:
    api = _CSRF_API.match(request.path)
    if api:
        return errors.CsrfFailed(f"send the CSRF token in the X-CSRFToken header (GET {api[0]}csrf-token)")
    return errors.CsrfFailed(CSRF_PAGE_DETAIL)


def as_broker_error(exc: Exception) -> errors.BrokerError:
    """What any exception means to the client; storage failures and surprises are logged here."""
    if isinstance(exc, errors.BrokerError):
        if exc.status >= 500:
            log.error("request %s failed: %s", web.request_id(), exc.detail)
        return exc
    if isinstance(exc, CSRFError):
        return _csrf_error()
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if isinstance(exc, redis.RedisError):
        log_storage_failure(log, f"request {web.request_id()}", exc)
        return errors.StorageUnavailable(STORAGE_DETAIL)
    if isinstance(exc, LedgerCorrupt):
        # The stored tree lacks a hash it needs: an operator problem (run `broker ledger verify`).
        log.error("request %s: ledger storage is inconsistent: %s", web.request_id(), exc)
        error = errors.ServerError(f"The ledger cannot answer. The request id is {web.request_id()}.")
        error.title = "Ledger unavailable"
        return error
    log.exception("request %s %s %s: unhandled error", web.request_id(), request.method, request.path)
    return errors.ServerError(f"Something went wrong on our side. The request id is {web.request_id()}.")


def problem(exc: errors.BrokerError) -> Response:
    """RFC 9457 problem JSON with the error's headers."""
    response = jsonify(exc.body())
    response.status_code = exc.status
    response.mimetype = "application/problem+json"
    response.headers.update(exc.get_headers())
    return no_store(response)


def page(exc: errors.BrokerError) -> Response:
    """The readable page for a browser."""
    html = render_template("error.html", status=exc.status, code=exc.code, detail=exc.detail)
    response = Response(html, status=exc.status, mimetype="text/html")
    response.headers.update(exc.get_headers())
    return no_store(response)


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    """RFC 6749 section 5.2 error JSON, for the protocol endpoints' own checks; ``invalid_client`` is
    401 with the HTTP Basic challenge (RFC 6749 5.2)."""
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    if error == "invalid_client":
        response.status_code = 401
        response.headers["WWW-Authenticate"] = BASIC_CHALLENGE
    return no_store(response)


def render(exc: Exception) -> BaseResponse:
    """The one renderer: problem JSON for APIs, a page (or the way to the login page) in browsers,
    RFC 6749 error JSON for a protocol error that escaped the endpoint's own handling."""
    if isinstance(exc, OAuth2Error):
        return oauth_error(exc.error or "invalid_request", exc.get_error_description() or "", exc.status_code)
    error = as_broker_error(exc)
    api = web.wants_json()
    if isinstance(error, errors.SignInRequired) and not request.path.startswith(web.JSON_PREFIXES):
        from broker.web.interactions.session import login_url

        return no_store(redirect(login_url(request.full_path.rstrip("?")), code=303))
    return problem(error) if api else page(error)


def install(app: Flask) -> None:
    """Register the renderer for everything a request can raise (no blueprint renders its own)."""

    def handler(exc: Exception) -> Any:
        return render(exc)

    kinds = (
        errors.BrokerError,
        OAuth2Error,
        CSRFError,
        HTTPException,
        redis.RedisError,
        LedgerCorrupt,
        Exception,
    )
    for kind in kinds:
        app.register_error_handler(kind, handler)
