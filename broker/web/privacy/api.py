"""The privacy center as JSON under ``/privacy/v1`` (session-authenticated, like the pages).

Errors are RFC 9457 problem JSON. POSTs need the CSRF token in the ``X-CSRFToken`` header
(flask-wtf reads it there); get one from ``GET /privacy/v1/csrf-token`` with the same session.
Disclosures are ``GET /privacy/v1/disclosures`` (broker.web.ledger.api); receipts are
``/privacy/v1/receipts`` (broker.web.privacy.receipts).
"""

from __future__ import annotations

from typing import Any

from flask import Response, request, stream_with_context
from flask_wtf.csrf import generate_csrf

from broker.apps.registry import get_app
from broker.consent import deletion, notices
from broker.consent import grants as grants_svc
from broker.consent import person as center
from broker.directory import service as directory
from broker.errors import NotFound, ValidationFailed
from broker.gate import explain
from broker.web.interactions import i18n, reauth
from broker.web.interactions.logout import sign_out_here
from broker.web.interactions.session import login_required
from broker.web.privacy.blueprint import bp
from broker.web.privacy.pages import held_grant
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import Lines, documented
from broker.web.shared.responses import NO_STORE, no_store

SIGN_IN = "sign in to use your privacy center"


@bp.get("/privacy/v1/csrf-token")
@documented(rs.CsrfTokenSchema)
def api_csrf_token() -> Any:
    """The token to send as ``X-CSRFToken`` on POSTs (bound to this session)."""
    login_required(SIGN_IN)
    return {"csrf_token": generate_csrf(), "header": "X-CSRFToken"}, 200, NO_STORE


@bp.get("/privacy/v1/apps")
@documented(rs.PersonAppsSchema)
def api_apps() -> Any:
    """The apps holding a grant from the person, and the org apps receiving their basic fields."""
    uid = login_required(SIGN_IN)
    lang = i18n.language()
    store, catalog = web.store(), web.catalog()
    return {
        "apps": center.app_grants(store, catalog, uid, lang),
        "org_apps": center.org_apps(store, catalog, uid, lang),
    }


@bp.get("/privacy/v1/notices")
@documented(rs.NoticeListSchema)
def api_notices() -> Any:
    """Decisions of the person's organizations about apps that receive members' data, newest first
    (``new``: not yet seen in the privacy center's page)."""
    uid = login_required(SIGN_IN)
    return {"notices": notices.for_person(web.store(), web.catalog(), uid, i18n.language())}, 200, NO_STORE


@bp.get("/privacy/v1/apps/<client_id>/explain")
@documented(rs.ExplanationSchema, errors={404: "No such app"})
def api_explain(client_id: str) -> Any:
    """Why the app receives each field about the person, or why not: the gate's own rule on the
    person's grant, with the reasons (codes, see the schema)."""
    uid = login_required(SIGN_IN)
    if get_app(web.store(), client_id) is None:
        raise NotFound("no such app")
    rows = explain.explain_grant(web.store(), web.catalog(), client_id, uid)
    return {"client_id": client_id, "fields": [r.as_json() for r in rows]}, 200, NO_STORE


@bp.get("/privacy/v1/deletion-requests")
@documented(rs.DeletionRequestListSchema)
def api_deletion_requests() -> Any:
    """Requests sent to apps to delete what they received about the person (after a withdrawal),
    newest first, with when each app acknowledged."""
    uid = login_required(SIGN_IN)
    return {"deletion_requests": deletion.for_person(web.store(), uid)}, 200, NO_STORE


@bp.post("/privacy/v1/apps/<client_id>/revoke")
@documented(rs.GrantChangeSchema, errors={404: "You hold no grant to this app"})
def api_revoke_app(client_id: str) -> Any:
    """Withdraw the whole grant: its tokens stop working, the app is told, a receipt is issued."""
    uid = login_required(SIGN_IN)
    held_grant(uid, client_id)
    grants_svc.revoke_grant(web.store(), web.settings(), client_id, uid)
    return {"client_id": client_id, "grant": None}


@bp.post("/privacy/v1/apps/<client_id>/scopes/<scope>/revoke")
@documented(rs.GrantChangeSchema, errors={404: "No grant to this app, or it lacks this scope"})
def api_revoke_scope(client_id: str, scope: str) -> Any:
    """Withdraw one scope; the grant keeps the fields its other scopes reach (none left: revoked)."""
    uid = login_required(SIGN_IN)
    grant = held_grant(uid, client_id)
    if scope not in grant["scopes"]:
        raise NotFound("the grant does not include this scope")
    left = grants_svc.revoke_scope(web.store(), web.settings(), web.catalog(), client_id, uid, scope)
    if left is not None:
        left = {k: left[k] for k in ("id", "scopes", "fields", "updated_at")}
    return {"client_id": client_id, "grant": left}


@bp.post("/privacy/v1/account/delete")
@documented(
    rs.AccountDeletedSchema,
    body=rs.AccountDeleteSchema,
    checks_type=False,
    errors={403: "Re-authentication required: send your password", 429: "Too many failed attempts"},
    summary="Delete your account (confirm with your username, and your password unless you signed "
    "in within BROKER_REAUTH_SECONDS); the session ends with it",
)
def api_delete_account() -> Any:
    """Body ``{"confirm_username": "<your username>", "password": "<your password>"}`` (the password
    may be left out within ``BROKER_REAUTH_SECONDS`` of signing in); the session ends with the account."""
    uid = login_required(SIGN_IN)
    payload = request.get_json(silent=True)
    store = web.store()
    username = directory.user_field(store, uid, "username") or uid
    if not isinstance(payload, dict) or payload.get("confirm_username") != username:
        raise ValidationFailed(
            "confirm with your username", fields={"confirm_username": ["must equal your username"]}
        )
    password = payload.get("password")
    reauth.require(uid, password if isinstance(password, str) and password else None)
    result = center.delete_account(store, web.settings(), uid)
    sign_out_here()
    return {
        "deleted": True,
        "revoked": result.revoked,
        "notified": [{"client_id": c, "org_id": o} for c, o in result.notified],
        "orgs_left": result.orgs_left,
    }


@bp.get("/privacy/v1/export")
@documented(media={"application/x-ndjson": Lines(rs.ExportLineSchema)})
def export() -> Any:
    """NDJSON export of everything about the signed-in person, streamed."""
    uid = login_required(SIGN_IN)
    lines = center.export_lines(web.store(), uid)
    response = Response(stream_with_context(lines), mimetype="application/x-ndjson")
    response.headers["Content-Disposition"] = 'attachment; filename="my-data.ndjson"'
    no_store(response)
    return response
