"""CSP ``form-action`` for the two pages whose form ends at an app.

Every page allows forms to post to the broker only (``form-action 'self'``, broker.web.shared.hooks).
Browsers apply ``form-action`` to the redirects that follow a form submission too, so the consent
page (its POST ends in a redirect to the app's registered redirect URI) and the login page on the
way to an authorization (login, then /oauth/authorize, then the app) also allow the registered
redirect URIs of that one app: scheme, host and port, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from flask import Response

from broker.apps import registry as apps_svc
from broker.web.shared import context as web
from broker.web.shared.hooks import PAGE_HEADERS

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def _source(uri: str) -> str | None:
    """A CSP source for a redirect URI: its origin (http/https) or its private-use scheme."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return (
            f"{scheme}://{parts.netloc}" if parts.netloc and not re.search(r"[\s;,']", parts.netloc) else None
        )
    return f"{scheme}:" if _SCHEME.fullmatch(scheme) else None


def policy(redirect_uris: Iterable[str]) -> str:
    base = PAGE_HEADERS["Content-Security-Policy"]
    sources = sorted({s for s in (_source(u) for u in redirect_uris) if s})
    if not sources:
        return base
    return base.replace("form-action 'self'", "form-action 'self' " + " ".join(sources), 1)


def allow_app_redirects(response: Response, client_id: str | None) -> Response:
    """Let this page's form end at ``client_id``'s registered redirect URIs."""
    if client_id:
        response.headers["Content-Security-Policy"] = policy(apps_svc.redirect_uris(web.store(), client_id))
    return response


def client_of_next(next_path: str | None) -> str | None:
    """The ``client_id`` of an authorization request the login page returns to, if it is one."""
    if not next_path:
        return None
    parts = urlsplit(next_path)
    if parts.path != "/oauth/authorize":
        return None
    found = parse_qs(parts.query).get("client_id") or []
    return found[0] if len(found) == 1 and len(found[0]) <= 128 else None
