"""The developer console's pages (``/developer/...``)."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, render_template, request
from flask_babel import gettext

from broker.apps import registry as apps_svc
from broker.errors import NotFound, ValidationFailed
from broker.web.developer.console import (
    _dead_letters,
    _form_page,
    _form_payload,
    _me,
    _overview,
    _own_app,
    _redeliver,
    _register,
    _reveal,
    _take_reveal,
    _update,
    bp,
)
from broker.web.interactions import reauth
from broker.web.shared import consoles
from broker.web.shared import context as web
from broker.web.shared.responses import no_store

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
            "data_label": _label_values(payload),
        }
        return _form_page("developer/app_form.html", 400, values=values, errors=exc.fields or {}, app=None)
    _reveal(record["client_id"], client_secret=client_secret, webhook_secret=webhook_secret)
    flash(gettext("Registered %(app)s.", app=record["name"]), "success")
    return redirect(f"/developer/apps/{record['client_id']}", code=303)


def _label_values(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in payload.get("data_label") or [] if isinstance(e, dict)]


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
        dead_retention_days=f"{round(web.settings().webhook_dead_retention_seconds / 86400, 2):g}",
        dead_max=web.settings().webhook_dead_max,
    )
    return no_store(Response(html, mimetype="text/html"))


@bp.get("/developer/apps/<client_id>/edit")
def edit_app(client_id: str) -> Any:
    record = _own_app(_me(), client_id)
    values = {
        **record,
        "redirect_uris": "\n".join(record["redirect_uris"]),
        "post_logout_redirect_uris": "\n".join(record.get("post_logout_redirect_uris") or []),
    }
    return _form_page("developer/app_form.html", values=values, errors={}, app=record)


@bp.post("/developer/apps/<client_id>/edit")
def update_app_page(client_id: str) -> Any:
    record = _own_app(_me(), client_id)
    payload = _form_payload(creating=False)
    try:
        _update(record, payload)
    except ValidationFailed as exc:
        values = {**record, **request.form, "scopes": payload["scopes"], "data_label": _label_values(payload)}
        return _form_page("developer/app_form.html", 400, values=values, errors=exc.fields or {}, app=record)
    flash(gettext("Saved."), "success")
    return redirect(f"/developer/apps/{client_id}", code=303)


def _reauthenticated(uid: str, client_id: str) -> bool:
    """Rotation hands out a credential: the password again (or a fresh sign-in); else a flash."""
    password = reauth.password_given()
    try:
        reauth.require(uid, password)
    except reauth.ReauthRequired:
        flash(gettext("The password is wrong.") if password else reauth.message(), "error")
        return False
    return True


@bp.post("/developer/apps/<client_id>/secret")
def rotate_secret_page(client_id: str) -> Any:
    uid = _me()
    _own_app(uid, client_id)
    if not _reauthenticated(uid, client_id):
        return redirect(f"/developer/apps/{client_id}", code=303)
    secret, old_expires = apps_svc.rotate_secret(web.store(), web.settings(), client_id)
    _reveal(client_id, client_secret=secret, previous_secret_expires_at=old_expires)
    return redirect(f"/developer/apps/{client_id}", code=303)


@bp.post("/developer/apps/<client_id>/webhook-secret")
def rotate_webhook_secret_page(client_id: str) -> Any:
    uid = _me()
    _own_app(uid, client_id)
    if not _reauthenticated(uid, client_id):
        return redirect(f"/developer/apps/{client_id}", code=303)
    secret = apps_svc.rotate_webhook_secret(web.store(), web.settings(), client_id)
    _reveal(client_id, webhook_secret=secret)
    return redirect(f"/developer/apps/{client_id}", code=303)


@bp.post("/developer/apps/<client_id>/secret/revoke-previous")
def revoke_previous_secrets_page(client_id: str) -> Any:
    uid = _me()
    _own_app(uid, client_id)
    if not _reauthenticated(uid, client_id):
        return redirect(f"/developer/apps/{client_id}", code=303)
    revoked = apps_svc.revoke_previous_secrets(web.store(), client_id)
    if revoked:
        flash(
            gettext("Previous client secrets revoked: %(num)s. Only the current one works now.", num=revoked),
            "success",
        )
    else:
        flash(gettext("There was no previous client secret to revoke."), "success")
    return redirect(f"/developer/apps/{client_id}", code=303)


@bp.post("/developer/apps/<client_id>/webhook-secret/revoke-previous")
def revoke_previous_webhook_secret_page(client_id: str) -> Any:
    uid = _me()
    _own_app(uid, client_id)
    if not _reauthenticated(uid, client_id):
        return redirect(f"/developer/apps/{client_id}", code=303)
    if apps_svc.revoke_previous_webhook_secret(web.store(), client_id):
        flash(gettext("The previous webhook secret no longer signs deliveries."), "success")
    else:
        flash(gettext("There was no previous webhook secret to revoke."), "success")
    return redirect(f"/developer/apps/{client_id}", code=303)


@bp.post("/developer/apps/<client_id>/events/<event_id>/redeliver")
def redeliver_page(client_id: str, event_id: str) -> Any:
    """Put a dead-lettered event back in the app's outbox; the worker delivers it next."""
    uid = _me()
    _own_app(uid, client_id)
    _redeliver(uid, client_id, event_id)
    flash(gettext("Event %(event)s queued for redelivery.", event=event_id), "success")
    return redirect(f"/developer/apps/{client_id}", code=303)


@bp.post("/developer/apps/<client_id>/events/<event_id>/purge")
def purge_page(client_id: str, event_id: str) -> Any:
    """Delete one dead-lettered event for good."""
    uid = _me()
    _own_app(uid, client_id)
    _dead_letters(uid, client_id, "purge", [event_id])
    flash(gettext("Event %(event)s deleted.", event=event_id), "success")
    return redirect(f"/developer/apps/{client_id}", code=303)


@bp.post("/developer/apps/<client_id>/dead-letters/<action>")
def dead_letters_page(client_id: str, action: str) -> Any:
    """Redeliver or delete every dead letter of the app (the buttons under the list)."""
    uid = _me()
    _own_app(uid, client_id)
    if action not in ("replay", "purge"):
        raise NotFound("no such action on dead letters")
    done = _dead_letters(uid, client_id, action, None)
    if action == "replay":
        message = gettext("%(count)s failed event(s) queued for redelivery.", count=len(done))
    else:
        message = gettext("%(count)s failed event(s) deleted.", count=len(done))
    flash(message, "success")
    return redirect(f"/developer/apps/{client_id}", code=303)


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
