"""What every request gets: an id (the caller's ``X-Request-Id`` when it is sane) and its W3C trace
id, an access-log line and its metrics, security headers on pages, and the voiding of disclosure
records whose request failed after they were written.

The access line names the URL rule (``/v1/orgs/<oid>/members``), never the raw path or its query
string (a query may carry a token), and no request header.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from flask import Flask, Response, g, request

from broker.observability import logs, metrics
from broker.web.shared import context as web

# Interactive pages must never be framed, leak the URL, or be sniffed (RFC 9700 4.16, 4.2.4).
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

# An incoming X-Request-Id is kept when it is short and plain (it goes into log lines and headers);
# anything else is replaced by a generated id.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# W3C Trace Context, traceparent: version-traceid-parentid-flags (lowercase hex). A later version
# may append fields after the flags; version ff is invalid, as are all-zero ids.
TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
UNMATCHED_ROUTE = "<unmatched>"

access_log = logging.getLogger("broker.access")


def incoming_request_id(value: str | None) -> str | None:
    """The caller's ``X-Request-Id`` if it is 1-128 characters of ``A-Z a-z 0-9 . _ : -``."""
    if value and REQUEST_ID.fullmatch(value):
        return value
    return None


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """``(trace_id, parent_id)`` of a valid ``traceparent`` header, else None (and it is ignored)."""
    if not value:
        return None
    match = TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"} or set(parent_id) == {"0"}:
        return None
    return trace_id, parent_id


def install(app: Flask) -> None:
    def assign_request_id() -> None:
        g.request_started = time.perf_counter()
        # The id of this request's disclosure records is always ours: a caller's id may repeat,
        # and records (and their voids) are keyed by it.
        g.record_request_id = secrets.token_hex(8)
        g.request_id = incoming_request_id(request.headers.get("X-Request-Id")) or g.record_request_id
        context = {"request_id": g.request_id}
        trace = parse_traceparent(request.headers.get("traceparent"))
        if trace:
            context["trace_id"], context["parent_id"] = trace
        logs.request_context.set(context)

    # First of all before_request functions: CSRF protection (registered earlier) may refuse the
    # request, and its refusal still needs an id and an access line.
    app.before_request_funcs.setdefault(None, []).insert(0, assign_request_id)

    @app.after_request
    def access_line(response: Response) -> Response:
        """Registered first, so it runs last (after_request runs in reverse): the final status."""
        started = g.get("request_started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        metrics.http_request(request.method, route, response.status_code, seconds)
        fields = {
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 1),
        }
        if g.get("record_request_id") != g.get("request_id") and g.get("disclosed"):
            fields["record_request_id"] = g.record_request_id  # the request_id of its ledger records
        access_log.info("%s %s %s", request.method, route, response.status_code, extra={"fields": fields})
        return response

    @app.teardown_request
    def forget_request_context(exc: BaseException | None) -> None:
        logs.request_context.set(None)

    @app.after_request
    def void_refused_disclosures(response: Response) -> Response:
        """Records committed for a request that then failed (e.g. the profile read hit a failover) are
        not disclosures: no data left. Void them so the history never shows them as delivered."""
        pending = g.pop("disclosure_records", None)
        if pending is not None:
            g.disclosed = True
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
