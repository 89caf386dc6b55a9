"""CORS for the endpoints a browser app may call (token, discovery, JWKS, later userinfo).

Only origins derived from registered redirect URIs are allowed: a client's own origins on the
token endpoint, the origins of any registered app on public metadata. Never on /oauth/authorize,
which is a top-level navigation, not an API.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Set
from typing import TYPE_CHECKING, Any
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


# Every app's origins, per store, computed once per value of the registry's redirect-URI version
# (a Redis key the registry replaces after every registration, redirect-URI change and deletion, in
# whichever process): a request reads that one key, and only when it has changed all apps' URIs.
# So a newly registered app's origin is allowed from the next request on, in every process. A
# write that bypasses the registry (a restore, a hand edit) is picked up within MAX_AGE_SECONDS.
MAX_AGE_SECONDS = 60.0
_cache: weakref.WeakKeyDictionary[Any, tuple[str, float, frozenset[str]]] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def any_app_origins(store: Store) -> frozenset[str]:
    """Origins of every registered app (one GET while nothing changed; see above)."""
    version = apps.redirect_uris_version(store)
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(store)
    if cached is not None and cached[0] == version and now - cached[1] < MAX_AGE_SECONDS:
        return cached[2]
    origins = frozenset(origins_from_redirect_uris(apps.all_redirect_uris(store)))
    with _cache_lock:
        _cache[store] = (version, now, origins)
    return origins


def apply(
    response: Response,
    allowed: Set[str] | Callable[[], Set[str]],
    *,
    methods: str = "GET, POST, OPTIONS",
) -> Response:
    """Add CORS headers when the request's Origin is allowed; always ``Vary: Origin``.

    ``allowed`` may be a function: it is called only when the request has an Origin header, so a
    request from a server (no Origin) costs no lookup at all."""
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if origin and origin in (allowed() if callable(allowed) else allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = methods
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response
