"""Platform API authentication: ``Authorization: Bearer <BROKER_PLATFORM_API_KEY>``."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import request

from broker.errors import Unauthenticated
from broker.web.shared import context as web

F = TypeVar("F", bound=Callable[..., Any])


def require_platform_key(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        expected = web.settings().platform_api_key
        if (
            scheme.lower() != "bearer"
            or not given
            or not hmac.compare_digest(given.encode(), expected.encode())
        ):
            raise Unauthenticated("a valid platform API key is required (Authorization: Bearer <key>)")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
