"""The one error renderer (broker/web/shared/errors.py): every kind of failure, the form it leaves in."""

from __future__ import annotations

from typing import Any

import redis
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import MethodNotAllowed

from broker.errors import MissingToken, SignInRequired
from broker.gate.disclosure import InsufficientScope, InvalidToken
from broker.web.shared.errors import render


def _render(app: Any, path: str, exc: Exception, accept: str = "*/*") -> Any:
    with app.test_request_context(path, headers={"Accept": accept}):
        return render(exc)


def test_storage_failure_is_503_problem_with_retry_after(app: Any) -> None:
    response = _render(app, "/v1/me", redis.ConnectionError("down"))
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Cache-Control"] == "no-store"


def test_bearer_errors_carry_rfc6750_challenges(app: Any) -> None:
    invalid = _render(app, "/v1/me", InvalidToken("The access token expired"))
    assert invalid.status_code == 401
    assert invalid.headers["WWW-Authenticate"] == (
        'Bearer realm="broker", error="invalid_token", error_description="The access token expired"'
    )
    scope = _render(app, "/v1/me", InsufficientScope("needs profile", scope="profile"))
    assert scope.status_code == 403
    assert (
        scope.headers["WWW-Authenticate"]
        == 'Bearer realm="broker", error="insufficient_scope", scope="profile"'
    )
    missing = _render(app, "/v1/me", MissingToken("An access token is required"))
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="broker"'
    assert missing.get_json()["error"] == "invalid_request"


def test_sign_in_required_redirects_pages_and_challenges_apis(app: Any) -> None:
    page = _render(app, "/privacy/receipts?cursor=x", SignInRequired())
    assert page.status_code == 303
    assert page.headers["Location"] == "/login?next=%2Fprivacy%2Freceipts%3Fcursor%3Dx"
    api = _render(app, "/privacy/v1/apps", SignInRequired("sign in to use your privacy center"))
    assert api.status_code == 401
    assert api.headers["WWW-Authenticate"] == 'Cookie realm="broker"'
    assert api.get_json()["detail"] == "sign in to use your privacy center"


def test_csrf_failure_names_the_token_endpoint_on_apis_and_explains_on_pages(app: Any) -> None:
    api = _render(app, "/admin/v1/orgs/x", CSRFError())
    assert api.status_code == 400
    assert api.get_json()["error"] == "csrf_failed"
    assert "GET /admin/v1/csrf-token" in api.get_json()["detail"]
    page = _render(app, "/login", CSRFError(), accept="text/html")
    assert page.status_code == 400 and page.mimetype == "text/html"
    assert "csrf_failed" in page.get_data(as_text=True)


def test_method_not_allowed_keeps_allow(app: Any) -> None:
    response = _render(app, "/v1/me", MethodNotAllowed(valid_methods=["GET"]))
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.get_json()["error"] == "method_not_allowed"


def test_escaped_protocol_error_is_rfc6749_json(app: Any) -> None:
    response = _render(app, "/oauth/token", InvalidRequestError("Parameter 'x' is repeated."))
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "error": "invalid_request",
        "error_description": "Parameter 'x' is repeated.",
    }
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"


def test_unexpected_error_is_500_without_internals(app: Any) -> None:
    response = _render(app, "/v1/me", RuntimeError("secret internals"))
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"] == "server_error"
    assert "secret internals" not in response.get_data(as_text=True)
