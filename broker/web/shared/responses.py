"""Response helpers every blueprint shares."""

from __future__ import annotations

from typing import TypeVar

from werkzeug.wrappers import Response as BaseResponse

R = TypeVar("R", bound=BaseResponse)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""The headers :func:`no_store` sets, for views that return ``(body, status, NO_STORE)``."""


def no_store(response: R) -> R:
    """Never cached, by the browser or anything between (RFC 9111 5.2.2.5; ``Pragma`` for HTTP/1.0
    caches, as RFC 6749 5.1 asks of token responses). The one helper (node-oidc-provider's
    ``shared/no_cache.js``): personal data, tokens, secrets and errors all go out through it."""
    response.headers.update(NO_STORE)
    return response
