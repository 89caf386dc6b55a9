"""The developer console's JSON API (``/developer/v1/...``), session-authenticated with CSRF."""

from __future__ import annotations

from typing import Any

from flask import Response

from broker.apps import registry as apps_svc
from broker.apps.registry import AppCreateSchema, AppUpdateSchema
from broker.web.developer.console import (
    _dead_letters,
    _me,
    _overview,
    _own_app,
    _redeliver,
    _register,
    _update,
    bp,
)
from broker.web.developer.schemas import (
    DeadLetterSelectionSchema,
    DeadLettersPurgedSchema,
    DeadLettersReplayedSchema,
)
from broker.web.interactions import reauth
from broker.web.ledger.api import LISTING
from broker.web.shared import consoles
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import Reply, documented, links_to
from broker.web.shared.responses import NO_STORE

# -- JSON API ---------------------------------------------------------------------------------------

_OWN = {404: "You have no app with this client id"}
_REAUTH = {403: "Re-authentication required: send your password", 429: "Too many failed attempts"}


@bp.get("/developer/v1/apps")
@documented(rs.AppListSchema, summary="Your apps")
def api_list() -> Reply:
    uid = _me()
    return {"apps": [apps_svc.public_view(a) for a in apps_svc.list_apps(web.store(), uid)]}, 200, NO_STORE


@bp.post("/developer/v1/apps")
@documented(
    rs.NewAppSchema,
    status=201,
    location=True,
    links=links_to(
        "/developer/v1/apps/{client_id}",
        {"client_id": "$response.body#/client_id"},
        GetApp="get",
        UpdateApp="patch",
        DeleteApp="delete",
    ),
    body=AppCreateSchema(exclude=("developer_id",)),
    summary="Register an app (you are its developer); its secrets are shown this once",
)
def api_create() -> Reply:
    uid = _me()
    record, client_secret, webhook_secret = _register(uid, consoles.json_payload())
    body: dict[str, Any] = {**apps_svc.public_view(record), "webhook_secret": webhook_secret}
    if client_secret is not None:
        body["client_secret"] = client_secret
    return body, 201, {**NO_STORE, "Location": f"/developer/v1/apps/{record['client_id']}"}


@bp.get("/developer/v1/apps/<client_id>")
@documented(
    rs.DeveloperAppSchema,
    errors=_OWN,
    summary="One of your apps: grants, installations, secret times, disclosures, webhook deliveries",
)
def api_get(client_id: str) -> Reply:
    record = _own_app(_me(), client_id)
    body = _overview(record)
    body["disclosures"] = consoles.app_disclosures(client_id)
    body["deliveries"] = consoles.app_deliveries(client_id)
    return body, 200, NO_STORE


@bp.get("/developer/v1/disclosures")
@documented(rs.DisclosurePageSchema, media=LISTING, query=rs.DisclosureByPersonQuery)
def api_my_disclosures() -> Reply:
    """Records of every app the developer owns: filters, cursor pagination, ndjson/csv export."""
    from broker.web.ledger.api import listing

    uid = _me()
    return listing(
        "developer",
        uid,
        person_filter=True,
        apps=[a["client_id"] for a in apps_svc.list_apps(web.store(), uid)],
    )


@bp.get("/developer/v1/apps/<client_id>/disclosures")
@documented(rs.DisclosurePageSchema, media=LISTING, query=rs.DisclosureByPersonQuery, errors=_OWN)
def api_app_disclosures(client_id: str) -> Reply:
    """Records of one of the developer's apps: filters, cursor pagination, ndjson/csv export."""
    from broker.web.ledger.api import listing

    _own_app(_me(), client_id)
    return listing("app", client_id, person_filter=True, apps=[client_id])


@bp.patch("/developer/v1/apps/<client_id>")
@documented(rs.AppSchema, body=AppUpdateSchema, errors=_OWN, summary="Change an app's editable fields")
def api_update(client_id: str) -> Reply:
    record = _own_app(_me(), client_id)
    return apps_svc.public_view(_update(record, consoles.json_payload())), 200, NO_STORE


@bp.delete("/developer/v1/apps/<client_id>")
@documented(
    status=204, errors=_OWN, summary="Delete an app: every grant, installation and token under it ends"
)
def api_delete(client_id: str) -> Reply:
    _own_app(_me(), client_id)
    apps_svc.delete_app(web.store(), client_id)
    return Response(status=204)


@bp.post("/developer/v1/apps/<client_id>/secret")
@documented(
    rs.SecretRotatedSchema,
    errors={**_OWN, **_REAUTH, 409: "A public client has no client secret"},
    summary="Issue a new client secret; the old one works for the overlap (send "
    '`{"password": ...}` unless you signed in within BROKER_REAUTH_SECONDS)',
)
def api_rotate_secret(client_id: str) -> Reply:
    uid = _me()
    _own_app(uid, client_id)
    reauth.require(uid, reauth.password_given())
    secret, old_expires = apps_svc.rotate_secret(web.store(), web.settings(), client_id)
    body = {"client_id": client_id, "client_secret": secret, "previous_secret_expires_at": old_expires}
    return body, 200, NO_STORE


@bp.post("/developer/v1/apps/<client_id>/webhook-secret")
@documented(
    rs.WebhookSecretRotatedSchema,
    errors={**_OWN, **_REAUTH},
    summary='Issue a new webhook signing secret (send `{"password": ...}` unless you signed in within '
    "BROKER_REAUTH_SECONDS)",
)
def api_rotate_webhook_secret(client_id: str) -> Reply:
    uid = _me()
    _own_app(uid, client_id)
    reauth.require(uid, reauth.password_given())
    secret = apps_svc.rotate_webhook_secret(web.store(), web.settings(), client_id)
    return {"client_id": client_id, "webhook_secret": secret}, 200, NO_STORE


@bp.post("/developer/v1/apps/<client_id>/secret/revoke-previous")
@documented(
    rs.SecretsRevokedSchema,
    errors={**_OWN, **_REAUTH, 409: "A public client has no client secret"},
    summary="End every previous client secret now (after a leak: rotate, then this); only the current "
    'secret works from the next request (send `{"password": ...}` unless you signed in within '
    "BROKER_REAUTH_SECONDS)",
)
def api_revoke_previous_secrets(client_id: str) -> Reply:
    uid = _me()
    _own_app(uid, client_id)
    reauth.require(uid, reauth.password_given())
    revoked = apps_svc.revoke_previous_secrets(web.store(), client_id)
    return {"client_id": client_id, "revoked": revoked}, 200, NO_STORE


@bp.post("/developer/v1/apps/<client_id>/webhook-secret/revoke-previous")
@documented(
    rs.WebhookSecretRevokedSchema,
    errors={**_OWN, **_REAUTH},
    summary="Stop signing deliveries with the previous webhook secret now (send "
    '`{"password": ...}` unless you signed in within BROKER_REAUTH_SECONDS)',
)
def api_revoke_previous_webhook_secret(client_id: str) -> Reply:
    uid = _me()
    _own_app(uid, client_id)
    reauth.require(uid, reauth.password_given())
    revoked = apps_svc.revoke_previous_webhook_secret(web.store(), client_id)
    return {"client_id": client_id, "revoked": revoked}, 200, NO_STORE


@bp.post("/developer/v1/apps/<client_id>/events/<event_id>/redeliver")
@documented(
    rs.RedeliverySchema,
    errors={404: "No such app of yours, or no failed delivery with this event id"},
    summary="Queue a dead-lettered webhook event for delivery again",
)
def api_redeliver(client_id: str, event_id: str) -> Reply:
    uid = _me()
    _own_app(uid, client_id)
    _redeliver(uid, client_id, event_id)
    return {"client_id": client_id, "event_id": event_id, "queued": True}, 200, NO_STORE


_DEAD = {404: "No such app of yours, or an event id that is not one of its dead letters (nothing changed)"}


def _selection(uid: str, client_id: str) -> list[str] | None:
    _own_app(uid, client_id)
    data = consoles.load(DeadLetterSelectionSchema(), consoles.json_payload())
    return None if data.get("all") else list(data["event_ids"])


@bp.post("/developer/v1/apps/<client_id>/dead-letters/replay")
@documented(
    DeadLettersReplayedSchema,
    body=DeadLetterSelectionSchema,
    errors=_DEAD,
    summary="Queue dead-lettered webhook events for delivery again (a new attempt series, same event "
    'ids): `{"event_ids": [...]}` or `{"all": true}`; all or nothing',
)
def api_replay_dead_letters(client_id: str) -> Reply:
    uid = _me()
    replayed = _dead_letters(uid, client_id, "replay", _selection(uid, client_id))
    return {"client_id": client_id, "replayed": replayed}, 200, NO_STORE


@bp.post("/developer/v1/apps/<client_id>/dead-letters/purge")
@documented(
    DeadLettersPurgedSchema,
    body=DeadLetterSelectionSchema,
    errors=_DEAD,
    summary='Delete dead-lettered webhook events for good: `{"event_ids": [...]}` or `{"all": true}`; '
    "all or nothing",
)
def api_purge_dead_letters(client_id: str) -> Reply:
    uid = _me()
    purged = _dead_letters(uid, client_id, "purge", _selection(uid, client_id))
    return {"client_id": client_id, "purged": purged}, 200, NO_STORE
