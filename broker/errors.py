"""One ``BrokerError`` tree for everything that is not an OAuth protocol error.

OAuth endpoints raise Authlib's ``OAuth2Error`` subclasses (one class per RFC error code). Everything
else raises a ``BrokerError``; one renderer (``broker.web.shared.errors``) turns it into an RFC 9457
problem document for APIs or a readable page in the browser. An error carries its own headers
(``get_headers``, as Authlib's errors do): ``Retry-After`` on 503, the RFC 6750 bearer challenge,
the session-cookie challenge. A 5xx body never carries internals: the log gets the detail.
"""

from __future__ import annotations

from typing import Any


class BrokerError(Exception):
    status = 400
    code = "invalid_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str = "",
        *,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.fields = fields
        self.extra = extra
        self.headers = dict(headers or {})

    def get_headers(self) -> dict[str, str]:
        """Headers the response must carry besides the body (RFC 6750 challenges, Retry-After...)."""
        return dict(self.headers)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "error": self.code,
            "detail": self.detail,
        }
        if self.fields:
            body["errors"] = self.fields
        body.update(self.extra)
        return body


class ValidationFailed(BrokerError):
    """Input failed validation; ``fields`` maps each bad field to its problems."""

    status = 400
    code = "invalid_request"
    title = "Invalid input"


class Unauthenticated(BrokerError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class ClientAuthenticationFailed(Unauthenticated):
    """An app-facing API that takes client authentication (HTTP Basic client id and secret)."""

    code = "invalid_client"
    title = "Client authentication failed"

    def get_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="broker"', **self.headers}


class SignInRequired(Unauthenticated):
    """A person must be signed in (session cookie): APIs answer 401 with a cookie challenge, pages
    send the browser to the login page and back."""

    def get_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Cookie realm="broker"', **self.headers}


class CsrfFailed(BrokerError):
    """A state-changing request without the session's CSRF token (a form or ``X-CSRFToken``)."""

    status = 400
    code = "csrf_failed"
    title = "Bad request"


class BearerError(BrokerError):
    """RFC 6750 section 3: an error on a bearer-protected resource carries a ``WWW-Authenticate:
    Bearer`` challenge (Authlib's ``rfc6750.errors`` model); ``no_store`` as every token response."""

    status = 401

    def challenge(self) -> dict[str, str]:
        """The challenge's auth-params after the realm (none for a request without credentials)."""
        return {}

    def get_headers(self) -> dict[str, str]:
        params = "".join(f', {k}="{v}"' for k, v in self.challenge().items())
        return {"WWW-Authenticate": f'Bearer realm="broker"{params}', **self.headers}


class MissingToken(BearerError):
    """RFC 6750 3.1: a request without credentials gets a bare challenge and no error code."""

    status = 401
    code = "invalid_request"
    title = "Access token required"


class Forbidden(BrokerError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(BrokerError):
    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowed(BrokerError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class Conflict(BrokerError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(BrokerError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class UnsupportedMediaType(BrokerError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported content type"


class RateLimited(BrokerError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServerError(BrokerError):
    """Anything unexpected: 500, a body with the request id and nothing else."""

    status = 500
    code = "server_error"
    title = "Internal server error"


class StorageUnavailable(BrokerError):
    """Redis cannot be reached or did not confirm a write: fail closed (DESIGN invariant 1)."""

    status = 503
    code = "temporarily_unavailable"
    title = "Service temporarily unavailable"

    def get_headers(self) -> dict[str, str]:
        return {"Retry-After": "1", **self.headers}


class CommandError(Exception):
    """A ``broker`` command failed in a way the user can fix: printed as ``broker <command>: <message>``
    without a traceback, exit 2. Not a ``BrokerError``: it never reaches HTTP."""
