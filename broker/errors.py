"""One ``BrokerError`` tree for everything that is not an OAuth protocol error.

OAuth endpoints raise Authlib's ``OAuth2Error`` subclasses (one class per RFC error code). Everything
else raises a ``BrokerError``; one handler renders it as an RFC 9457 problem document for APIs and
as a readable page in the browser. A 5xx body never carries internals: the log gets the detail.
"""

from __future__ import annotations

from typing import Any


class BrokerError(Exception):
    status = 400
    code = "invalid_request"
    title = "Bad request"

    def __init__(self, detail: str = "", *, fields: dict[str, Any] | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.fields = fields
        self.extra = extra

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


class StorageUnavailable(BrokerError):
    """Redis cannot be reached or did not confirm a write: fail closed (DESIGN invariant 1)."""

    status = 503
    code = "temporarily_unavailable"
    title = "Service temporarily unavailable"


class CommandError(Exception):
    """A ``broker`` command failed in a way the user can fix: printed as ``broker <command>: <message>``
    without a traceback, exit 2. Not a ``BrokerError``: it never reaches HTTP."""
