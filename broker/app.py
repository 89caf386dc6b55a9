"""The Flask application factory. It only assembles: settings, extensions, the shared objects every
request uses (store, catalog, keyring, gate), one blueprint per audience, the request hooks and the
one error renderer; behaviour lives in broker/web and the domain packages."""

from __future__ import annotations

import logging

from flask import Flask

from broker.config import Settings
from broker.core import catalog as catalog_mod
from broker.core.keyring import Keyring
from broker.extensions import csrf
from broker.storage.store import Store
from broker.web.interactions import i18n
from broker.web.interactions import session as login_session

log = logging.getLogger("broker.app")


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
        store,
        app.extensions["broker.catalog"],
        settings.token_hash_key,
        settings.pairwise_key,
        ledger_logs=settings.ledger_logs,
    )
    # Size and depth limits before any JSON body is parsed (broker/web/shared/bounded_json.py).
    from broker.web.shared import bounded_json

    bounded_json.install(app)
    login_session.init_app(app)  # server-side sessions (broker.directory.sessions)
    csrf.init_app(app)
    i18n.init_app(app)

    _register_blueprints(app)
    _register_hooks(app)
    _register_errors(app)

    return app


def _register_blueprints(app: Flask) -> None:
    from broker.web.admin import api as _admin_api  # noqa: F401 - routes attach to the blueprint
    from broker.web.admin import history as _admin_history  # noqa: F401 - the history pages (and /audit)
    from broker.web.admin import pages as _admin_pages  # noqa: F401
    from broker.web.admin.console import bp as admin_bp
    from broker.web.data_api.api import bp as api_bp
    from broker.web.developer import api as _developer_api  # noqa: F401 - routes attach to the blueprint
    from broker.web.developer import history as _developer_history  # noqa: F401 - the disclosures page
    from broker.web.developer import pages as _developer_pages  # noqa: F401
    from broker.web.developer.console import bp as developer_bp
    from broker.web.interactions import consent, login  # noqa: F401 - their routes attach to the blueprint
    from broker.web.interactions.blueprint import bp as interactions_bp
    from broker.web.ledger.api import bp as ledger_bp
    from broker.web.oauth.api import bp as oauth_bp
    from broker.web.platform import apps, directory  # noqa: F401 - their routes attach to the blueprint
    from broker.web.platform.blueprint import bp as internal_bp
    from broker.web.privacy import api, pages, receipts, sessions  # noqa: F401 - their routes attach to the blueprint
    from broker.web.privacy.blueprint import bp as privacy_bp
    from broker.web.shared.health import bp as health_bp
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
        health_bp,
    ):
        app.register_blueprint(bp)


def _register_hooks(app: Flask) -> None:
    from broker.web.shared import hooks

    hooks.install(app)


def _register_errors(app: Flask) -> None:
    from broker.web.shared import errors as web_errors

    web_errors.install(app)
