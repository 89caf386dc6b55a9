"""The privacy center as JSON under ``/privacy/v1`` (session-authenticated, like the pages).

Errors are RFC 9457 problem JSON. POSTs need the CSRF token in the ``X-CSRFToken`` header
(flask-wtf reads it there); get one from ``GET /privacy/v1/csrf-token`` with the same session.
Disclosures are ``GET /privacy/v1/disclosures`` (broker.ledger.views); receipts are
``/privacy/v1/receipts`` (broker.privacy.receipts).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Response, jsonify, request, stream_with_context
from flask_wtf.csrf import generate_csrf

from broker import web
from broker.errors import NotFound, Unauthenticated, ValidationFailed
from broker.interactions import i18n
from broker.interactions.session import current_user_id, sign_out
from broker.privacy import center
from broker.privacy.pages import held_grant
from broker.privacy.receipts import _api
from broker.privacy.views import bp
from broker.services import grants as grants_svc
from broker.storage import keys


def require_user() -> str:
    uid = current_user_id()
    if uid is None:
        raise Unauthenticated("sign in to use your privacy center")
    return uid


@bp.get("/privacy/v1/csrf-token")
@_api
def api_csrf_token() -> Any:
    """The token to send as ``X-CSRFToken`` on POSTs (bound to this session)."""
    require_user()
    response = jsonify({"csrf_token": generate_csrf(), "header": "X-CSRFToken"})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/privacy/v1/apps")
@_api
def api_apps() -> Any:
    uid = require_user()
    lang = i18n.language()
    store, catalog = web.store(), web.catalog()
    return jsonify(
        {
            "apps": center.app_grants(store, catalog, uid, lang),
            "org_apps": center.org_apps(store, catalog, uid, lang),
        }
    )


@bp.post("/privacy/v1/apps/<client_id>/revoke")
@_api
def api_revoke_app(client_id: str) -> Any:
    uid = require_user()
    held_grant(uid, client_id)
    grants_svc.revoke_grant(web.store(), web.settings(), client_id, uid)
    return jsonify({"client_id": client_id, "grant": None})


@bp.post("/privacy/v1/apps/<client_id>/scopes/<scope>/revoke")
@_api
def api_revoke_scope(client_id: str, scope: str) -> Any:
    uid = require_user()
    grant = held_grant(uid, client_id)
    if scope not in grant["scopes"]:
        raise NotFound("the grant does not include this scope")
    left = grants_svc.revoke_scope(web.store(), web.settings(), web.catalog(), client_id, uid, scope)
    if left is not None:
        left = {k: left[k] for k in ("id", "scopes", "fields", "updated_at")}
    return jsonify({"client_id": client_id, "grant": left})


@bp.post("/privacy/v1/account/delete")
@_api
def api_delete_account() -> Any:
    """Body ``{"confirm_username": "<your username>"}``; the session ends with the account."""
    uid = require_user()
    payload = request.get_json(silent=True)
    store = web.store()
    username = store.redis.hget(keys.user(uid), "username") or uid
    if not isinstance(payload, dict) or payload.get("confirm_username") != username:
        raise ValidationFailed(
            "confirm with your username", fields={"confirm_username": ["must equal your username"]}
        )
    result = center.delete_account(store, web.settings(), uid)
    sign_out()
    return jsonify(
        {
            "deleted": True,
            "revoked": result.revoked,
            "notified": [{"client_id": c, "org_id": o} for c, o in result.notified],
            "orgs_left": result.orgs_left,
        }
    )


@bp.get("/privacy/v1/export")
@_api
def export() -> Any:
    """NDJSON export of everything about the signed-in person, streamed."""
    uid = require_user()
    lines = center.export_lines(web.store(), uid)
    first = next(lines)  # read now: a Redis error here is a clean 503, not a broken stream

    def chain() -> Iterator[str]:
        yield first
        yield from lines

    response = Response(stream_with_context(chain()), mimetype="application/x-ndjson")
    response.headers["Content-Disposition"] = 'attachment; filename="my-data.ndjson"'
    response.headers["Cache-Control"] = "no-store"
    return response
