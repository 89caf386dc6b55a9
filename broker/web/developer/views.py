"""The developer console: register, edit, rotate secrets of and delete one's own apps.

Pages live under ``/developer/``; the same operations as JSON under ``/developer/v1/``, authenticated
by the session cookie, with CSRF on (send the token from ``GET /developer/v1/csrf-token`` in the
``X-CSRFToken`` header). The signed-in person is the developer; another person's app is a 404.

A new client or webhook secret is shown once: the page that follows the POST reads it from the
session and removes it there, so a reload (or any later visit) never shows it again. Redis keeps
only the keyed hash of a client secret (DESIGN invariant 5).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, session
from flask_babel import gettext

from broker.apps import registry as apps_svc
from broker.apps.registry import AppCreateSchema, AppUpdateSchema
from broker.consent import installations as inst_svc
from broker.errors import NotFound, ValidationFailed
from broker.web.interactions import session as login_session
from broker.web.ledger.api import LISTING
from broker.web.shared import consoles
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import Reply, documented
from broker.web.shared.responses import NO_STORE, no_store

bp = Blueprint("developer", __name__)

API = ("/developer/v1/",)
consoles.install_handlers(bp, API)


# -- shared steps -----------------------------------------------------------------------------------


def _me() -> str:
    return login_session.login_required()


def _own_app(uid: str, client_id: str) -> dict[str, Any]:
    """The developer's own app; anyone else's (or none) is the same 404."""
    record = apps_svc.get_app(web.store(), client_id)
    if record is None or record.get("developer_id") != uid:
        raise NotFound(f"you have no app with client id {client_id!r}")
    return record


def _register(uid: str, payload: dict[str, Any]) -> tuple[dict[str, Any], str | None, str]:
    store, settings, catalog = web.store(), web.settings(), web.catalog()

    def semantic(data: dict[str, Any]) -> dict[str, list[str]]:
        problems = apps_svc.validate(settings, catalog, data)
        unknown = catalog.unknown_scopes(data.get("scopes") or [])
        if unknown and "scopes" not in problems:  # named even when the kind is missing or wrong
            problems["scopes"] = [f"unknown scope(s): {', '.join(unknown)}"]
        return problems

    data = consoles.load(AppCreateSchema(exclude=("developer_id",)), payload, semantic)
    return apps_svc.register_app(store, settings, catalog, {**data, "developer_id": uid})


def _update(record: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    store, settings, catalog = web.store(), web.settings(), web.catalog()

    def semantic(data: dict[str, Any]) -> dict[str, list[str]]:
        merged = {**record, **data}
        return {k: v for k, v in apps_svc.validate(settings, catalog, merged).items() if k in data}

    data = consoles.load(AppUpdateSchema(), payload, semantic)
    return apps_svc.update_app(store, settings, catalog, record["client_id"], data)


def _secrets_meta(client_id: str) -> list[dict[str, Any]]:
    """Created and expiry times of the app's client secrets (never the secrets or their hashes)."""
    return apps_svc.secrets_meta(web.store(), client_id, int(time.time()))


def _overview(record: dict[str, Any]) -> dict[str, Any]:
    store = web.store()
    client_id = record["client_id"]
    installs = []
    for org_id in apps_svc.installation_org_ids(store, client_id):
        inst = inst_svc.get_installation(store, client_id, org_id)
        if inst is not None:
            installs.append({"org_id": org_id, "enabled": inst["enabled"], "scopes": inst["scopes"]})
    return {
        **apps_svc.public_view(record),
        "grant_count": apps_svc.grant_count(store, client_id),
        "installations": installs,
        "client_secrets": _secrets_meta(client_id),
    }


def _reveal(client_id: str, **secrets: Any) -> None:
    session["reveal"] = {"client_id": client_id, **{k: v for k, v in secrets.items() if v is not None}}


def _take_reveal(client_id: str) -> dict[str, Any] | None:
    found = session.get("reveal")
    if isinstance(found, dict) and found.get("client_id") == client_id:
        session.pop("reveal", None)
        return found
    return None


def _form_payload(*, creating: bool) -> dict[str, Any]:
    """The form as the JSON API would receive it; absent inputs are left out so they are named."""
    form = request.form
    payload: dict[str, Any] = {}
    names = ("kind", "client_type") if creating else ()
    for name in (*names, "name", "description", "contact", "privacy_policy_url", "webhook_url"):
        if name in form:
            payload[name] = form[name].strip()
    payload["redirect_uris"] = consoles.lines(form.get("redirect_uris", ""))
    payload["scopes"] = form.getlist("scopes")
    return payload


def _form_page(template: str, status: int = 200, **context: Any) -> Response:
    html = render_template(template, catalog=web.catalog(), kinds=apps_svc.KINDS, **context)
    return Response(html, status=status, mimetype="text/html")


# -- pages ------------------------------------------------------------------------------------------


@bp.get("/developer/")
def index() -> Any:
    uid = _me()
    return render_template("developer/index.html", apps=apps_svc.list_apps(web.store(), uid))


@bp.get("/developer/apps/new")
def new_app() -> Any:
    _me()
    return _form_page(
        "developer/app_form.html", values={"redirect_uris": "", "scopes": []}, errors={}, app=None
    )


@bp.post("/developer/apps")
def create_app_page() -> Any:
    uid = _me()
    payload = _form_payload(creating=True)
    try:
        record, client_secret, webhook_secret = _register(uid, payload)
    except ValidationFailed as exc:
        values = {
            **request.form,
            "scopes": payload["scopes"],
            "redirect_uris": request.form.get("redirect_uris", ""),
        }
        return _form_page("developer/app_form.html", 400, values=values, errors=exc.fields or {}, app=None)
    _reveal(record["client_id"], client_secret=client_secret, webhook_secret=webhook_secret)
    flash(gettext("Registered %(app)s.", app=record["name"]), "success")
    return redirect(f"/developer/apps/{record['client_id']}", code=303)


@bp.get("/developer/apps/<client_id>")
def app_page(client_id: str) -> Any:
    uid = _me()
    record = _own_app(uid, client_id)
    html = render_template(
        "developer/app.html",
        app=_overview(record),
        reveal=_take_reveal(client_id),
        disclosures=consoles.app_disclosures(client_id),
        deliveries=consoles.app_deliveries(client_id),
        overlap=web.settings().secret_overlap_seconds,
    )
    return no_store(Response(html, mimetype="text/html"))


@bp.get("/developer/apps/<client_id>/edit")
def edit_app(client_id: str) -> Any:
    record = _own_app(_me(), client_id)
    values = {**record, "redirect_uris": "\n".join(record["redirect_uris"])}
    return _form_page("developer/app_form.html", values=values, errors={}, app=record)


@bp.post("/developer/apps/<client_id>/edit")
def update_app_page(client_id: str) -> Any:
    record = _own_app(_me(), client_id)
    payload = _form_payload(creating=False)
    try:
        _update(record, payload)
    except ValidationFailed as exc:
        values = {**record, **request.form, "scopes": payload["scopes"]}
        return _form_page("developer/app_form.html", 400, values=values, errors=exc.fields or {}, app=record)
    flash(gettext("Saved."), "success")
    return redirect(f"/developer/apps/{client_id}", code=303)


@bp.post("/developer/apps/<client_id>/secret")
def rotate_secret_page(client_id: str) -> Any:
    _own_app(_me(), client_id)
    secret, old_expires = apps_svc.rotate_secret(web.store(), web.settings(), client_id)
    _reveal(client_id, client_secret=secret, previous_secret_expires_at=old_expires)
    return redirect(f"/developer/apps/{client_id}", code=303)


@bp.post("/developer/apps/<client_id>/webhook-secret")
def rotate_webhook_secret_page(client_id: str) -> Any:
    _own_app(_me(), client_id)
    secret = apps_svc.rotate_webhook_secret(web.store(), web.settings(), client_id)
    _reveal(client_id, webhook_secret=secret)
    return redirect(f"/developer/apps/{client_id}", code=303)


@bp.post("/developer/apps/<client_id>/events/<event_id>/redeliver")
def redeliver_page(client_id: str, event_id: str) -> Any:
    """Put a dead-lettered event back in the app's outbox; the worker delivers it next."""
    _own_app(_me(), client_id)
    _redeliver(client_id, event_id)
    flash(gettext("Event %(event)s queued for redelivery.", event=event_id), "success")
    return redirect(f"/developer/apps/{client_id}", code=303)


def _redeliver(client_id: str, event_id: str) -> None:
    """404 unless the event is one of this app's dead letters (nothing else can be redelivered)."""
    from broker.events import webhooks

    if not webhooks.redeliver(web.store(), client_id, event_id):
        raise NotFound(f"no failed delivery {event_id!r} for this app")


@bp.get("/developer/apps/<client_id>/delete")
def confirm_delete(client_id: str) -> Any:
    record = _own_app(_me(), client_id)
    return render_template("developer/delete.html", app=_overview(record))


@bp.post("/developer/apps/<client_id>/delete")
def delete_app_page(client_id: str) -> Any:
    record = _own_app(_me(), client_id)
    if request.form.get("confirm") != record["name"]:
        html = render_template(
            "developer/delete.html",
            app=_overview(record),
            error=gettext("Type the app's name exactly to confirm."),
        )
        return Response(html, status=400, mimetype="text/html")
    apps_svc.delete_app(web.store(), client_id)
    flash(
        gettext(
            "Deleted %(app)s: every grant, installation and token under it is revoked.", app=record["name"]
        ),
        "success",
    )
    return redirect("/developer/", code=303)


# -- JSON API ---------------------------------------------------------------------------------------

_OWN = {404: "You have no app with this client id"}


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

    return listing("developer", _me(), person_filter=True)


@bp.get("/developer/v1/apps/<client_id>/disclosures")
@documented(rs.DisclosurePageSchema, media=LISTING, query=rs.DisclosureByPersonQuery, errors=_OWN)
def api_app_disclosures(client_id: str) -> Reply:
    """Records of one of the developer's apps: filters, cursor pagination, ndjson/csv export."""
    from broker.web.ledger.api import listing

    _own_app(_me(), client_id)
    return listing("app", client_id, person_filter=True)


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
    errors={**_OWN, 409: "A public client has no client secret"},
    summary="Issue a new client secret; the old one works for the overlap",
)
def api_rotate_secret(client_id: str) -> Reply:
    _own_app(_me(), client_id)
    secret, old_expires = apps_svc.rotate_secret(web.store(), web.settings(), client_id)
    body = {"client_id": client_id, "client_secret": secret, "previous_secret_expires_at": old_expires}
    return body, 200, NO_STORE


@bp.post("/developer/v1/apps/<client_id>/webhook-secret")
@documented(rs.WebhookSecretRotatedSchema, errors=_OWN, summary="Issue a new webhook signing secret")
def api_rotate_webhook_secret(client_id: str) -> Reply:
    _own_app(_me(), client_id)
    secret = apps_svc.rotate_webhook_secret(web.store(), web.settings(), client_id)
    return {"client_id": client_id, "webhook_secret": secret}, 200, NO_STORE


@bp.post("/developer/v1/apps/<client_id>/events/<event_id>/redeliver")
@documented(
    rs.RedeliverySchema,
    errors={404: "No such app of yours, or no failed delivery with this event id"},
    summary="Queue a dead-lettered webhook event for delivery again",
)
def api_redeliver(client_id: str, event_id: str) -> Reply:
    _own_app(_me(), client_id)
    _redeliver(client_id, event_id)
    return {"client_id": client_id, "event_id": event_id, "queued": True}, 200, NO_STORE
