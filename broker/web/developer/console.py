"""The developer console's blueprint and the steps its pages and its API share.

The developer console: register, edit, rotate secrets of and delete one's own apps.

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

from flask import Blueprint, Response, render_template, request, session

from broker.apps import registry as apps_svc
from broker.apps.registry import AppCreateSchema, AppUpdateSchema
from broker.consent import installations as inst_svc
from broker.directory import service as directory
from broker.errors import NotFound
from broker.ledger import reading
from broker.web.interactions import session as login_session
from broker.web.shared import consoles
from broker.web.shared import context as web

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
    # A developer's App Center app is listed only after the platform operator approves it.
    return apps_svc.register_app(store, settings, catalog, {**data, "developer_id": uid}, needs_review=True)


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
            installs.append(
                {
                    "org_id": org_id,
                    "org_name": (directory.get_org(store, org_id) or {}).get("name") or "",
                    "enabled": inst["enabled"],
                    "scopes": inst["scopes"],
                    "fields": inst_svc.released(web.catalog(), inst),  # the admin's field choice
                }
            )
    return {
        **apps_svc.public_view(record),
        "grant_count": apps_svc.grant_count(store, client_id),
        "installations": installs,
        "client_secrets": _secrets_meta(client_id),
        "previous_webhook_secret_expires": apps_svc.previous_webhook_secret_expires(store, client_id),
        "label_drift": apps_svc.label_drift(web.catalog(), record),
        "received_beyond_label": apps_svc.received_beyond_label(
            reading.fields_received(store, client_id), record
        ),
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
    texts = (
        "name",
        "description",
        "contact",
        "privacy_policy_url",
        "terms_of_service_url",
        "webhook_url",
        "backchannel_logout_uri",
    )
    for name in (*names, *texts):
        if name in form:
            payload[name] = form[name].strip()
    payload["redirect_uris"] = consoles.lines(form.get("redirect_uris", ""))
    if "post_logout_redirect_uris" in form:
        payload["post_logout_redirect_uris"] = consoles.lines(form["post_logout_redirect_uris"])
    payload["scopes"] = form.getlist("scopes")
    if "label_field" in form or creating or any(k.startswith("label_purpose_") for k in form):
        payload["data_label"] = [
            {
                "field": name,
                "purpose": form.get(f"label_purpose_{name}", "").strip(),
                "retention_days": _days(form.get(f"label_retention_{name}", "")),
            }
            for name in form.getlist("label_field")
        ]
    return payload


def _days(raw: str) -> int | str:
    """The retention as a number when it is one; otherwise the text, for the schema to name."""
    text = raw.strip()
    return int(text) if text.isdigit() else text


def _form_page(template: str, status: int = 200, **context: Any) -> Response:
    html = render_template(template, catalog=web.catalog(), kinds=apps_svc.KINDS, **context)
    return Response(html, status=status, mimetype="text/html")


def _redeliver(uid: str, client_id: str, event_id: str) -> None:
    """404 unless the event is one of this app's dead letters (nothing else can be redelivered)."""
    from broker.events import webhooks

    if not webhooks.redeliver(web.store(), client_id, event_id, by=f"developer:{uid}"):
        raise NotFound(f"no failed delivery {event_id!r} for this app")


def _dead_letters(uid: str, client_id: str, action: str, event_ids: list[str] | None) -> list[str]:
    """Replay or purge the app's dead letters (``event_ids`` None: every one); all or nothing: an id
    that is not one of this app's dead letters is a 404 and nothing changes."""
    from broker.events import webhooks

    change = webhooks.replay if action == "replay" else webhooks.purge
    return change(web.store(), client_id, event_ids, by=f"developer:{uid}")
