"""What every request gets: an id, security headers on pages, and the voiding of disclosure records
whose request failed after they were written."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g

from broker.web.shared import context as web

# Interactive pages must never be framed, leak the URL, or be sniffed (RFC 9700 4.16, 4.2.4).
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def install(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        g.request_id = secrets.token_hex(8)

    @app.after_request
    def void_refused_disclosures(response: Response) -> Response:
        """Records committed for a request that then failed (e.g. the profile read hit a failover) are
        not disclosures: no data left. Void them so the history never shows them as delivered."""
        pending = g.pop("disclosure_records", None)
        if pending is not None and response.status_code >= 400:
            from broker.gate.disclosure import void_request

            void_request(web.store(), *pending)
        return response

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        if response.mimetype == "text/html":
            for name, value in PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
        return response
