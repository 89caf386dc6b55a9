"""The Flask application factory: one blueprint per audience, one error handler for all."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Flask, Response, g, jsonify

from broker.config import Settings
from broker.core import catalog as catalog_mod
from broker.core.keyring import Keyring
from broker.extensions import csrf
from broker.storage.store import Store
from broker.web.interactions import i18n

log = logging.getLogger("broker.app")

# Interactive pages must never be framed, leak the URL, or be sniffed (RFC 9700 4.16, 4.2.4).
_PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; "
    "form-action 'self' http: https:; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def create_app(settings: Settings, store: Store | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_NAME="broker_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session instead of the clock
        WTF_CSRF_SSL_STRICT=False,  # Referer is suppressed by our own no-referrer policy
        JSON_SORT_KEYS=False,
    )
    if store is None:
        store = Store.from_settings(settings)
    app.extensions["broker.settings"] = settings
    app.extensions["broker.store"] = store
    app.extensions["broker.catalog"] = catalog_mod.load(settings.scopes_dir)
    app.extensions["broker.keyring"] = Keyring(settings.signing_keys_file, create=not settings.production)
    from broker.gate.disclosure import Gate

    app.extensions["broker.gate"] = Gate(
        store, app.extensions["broker.catalog"], settings.token_hash_key, settings.pairwise_key
    )
    csrf.init_app(app)
    i18n.init_app(app)

    _register_blueprints(app)
    _register_hooks(app)
    _register_errors(app)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Any:
        # While the circuit breaker is open, ping() is refused at once and reports False; once the
        # open period is over, this ping is the probe that closes it again when Redis answers.
        checks = {"redis": store.ping(), "configuration": True, "scope_catalog": True}
        if store.wait_replicas > 0:
            # disclosures are refused (503) while their records cannot be confirmed by WAIT
            checks["replication"] = checks["redis"] and store.replication_ok()
        ready = all(checks.values())
        body = jsonify(
            status="ready" if ready else "unavailable", checks=checks, redis_circuit=store.breaker.state
        )
        return body, (200 if ready else 503)

    return app


def _register_blueprints(app: Flask) -> None:
    from broker.web.admin.views import bp as admin_bp
    from broker.web.data_api.api import bp as api_bp
    from broker.web.developer.views import bp as developer_bp
    from broker.web.interactions import consent, login  # noqa: F401 - their routes attach to the blueprint
    from broker.web.interactions.blueprint import bp as interactions_bp
    from broker.web.ledger.api import bp as ledger_bp
    from broker.web.oauth.views import bp as oauth_bp
    from broker.web.platform import apps, directory  # noqa: F401 - their routes attach to the blueprint
    from broker.web.platform.blueprint import bp as internal_bp
    from broker.web.privacy import api, pages, receipts  # noqa: F401 - their routes attach to the blueprint
    from broker.web.privacy.blueprint import bp as privacy_bp
    from broker.web.shared.openapi import bp as openapi_bp

    for bp in (
        interactions_bp,
        oauth_bp,
        api_bp,
        privacy_bp,
        admin_bp,
        developer_bp,
        internal_bp,
        ledger_bp,
        openapi_bp,
    ):
        app.register_blueprint(bp)


def _register_hooks(app: Flask) -> None:
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

            void_request(app.extensions["broker.store"], *pending)
        return response

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        if response.mimetype == "text/html":
            for name, value in _PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _register_errors(app: Flask) -> None:
    from broker.web.shared import errors as web_errors

    web_errors.install(app)
