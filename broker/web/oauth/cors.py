"""CORS for the endpoints a browser app may call (token, discovery, JWKS, later userinfo).

Only origins derived from registered redirect URIs are allowed: a client's own origins on the
token endpoint, the origins of any registered app on public metadata. Never on /oauth/authorize,
which is a top-level navigation, not an API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import request
from werkzeug.wrappers import Response

from broker.apps import registry as apps

if TYPE_CHECKING:
    from broker.storage.store import Store


def origin_of(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def origins_from_redirect_uris(uris: Iterable[str]) -> set[str]:
    return {o for o in (origin_of(u) for u in uris) if o}


def client_origins(store: Store, client_id: str) -> set[str]:
    return origins_from_redirect_uris(apps.redirect_uris(store, client_id))


def any_app_origins(store: Store) -> set[str]:
    """Origins of every registered app."""
    return origins_from_redirect_uris(apps.all_redirect_uris(store))


def apply(response: Response, allowed: set[str], *, methods: str = "GET, POST, OPTIONS") -> Response:
    """Add CORS headers when the request's Origin is allowed; always ``Vary: Origin``."""
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if origin and origin in allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = methods
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response
