"""The privacy center's pages under ``/privacy`` (server-rendered, no JavaScript).

Every form posts with a CSRF token and answers 303 (post/redirect/get). Someone not signed in is
sent to the login page and brought back. An app the person holds no grant to is simply not found.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext

from broker.apps.registry import get_app
from broker.consent import deletion, notices, receipts
from broker.consent import grants as grants_svc
from broker.consent import person as center
from broker.core.ids import CLIENT_ID_RE
from broker.directory import service as directory
from broker.errors import NotFound, ValidationFailed
from broker.gate import explain
from broker.ledger import checkpoints, reading
from broker.web.interactions import i18n, reauth
from broker.web.interactions.consent import field_rows as consent_rows
from broker.web.interactions.logout import sign_out_here
from broker.web.interactions.session import login_required
from broker.web.privacy.blueprint import bp
from broker.web.shared import context as web

PAGE_SIZE = 20
FILTER_ARGS = ("app", "since", "until")


def _fmt_time(value: Any) -> str:
    if value in (None, ""):
        return ""
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _render(template: str, lang: str, **context: Any) -> Response:
    html = render_template(
        template,
        fmt_time=_fmt_time,
        **context,
    )
    return Response(html, mimetype="text/html")


def held_grant(uid: str, client_id: str) -> dict[str, Any]:
    grant = grants_svc.get_grant(web.store(), client_id, uid) if CLIENT_ID_RE.match(client_id) else None
    if grant is None:
        raise NotFound("you have no grant to this app")
    return grant


def app_name(client_id: str) -> str:
    record = get_app(web.store(), client_id)
    return str(record["name"]) if record and record.get("name") else client_id


@bp.get("/privacy")
def overview() -> Any:
    uid = login_required()
    lang = i18n.language()
    store, catalog = web.store(), web.catalog()
    told = notices.for_person(store, catalog, uid, lang)
    deletions = deletion.for_person(store, uid, 20)
    page = _render(
        "privacy/overview.html",
        lang,
        apps=center.app_grants(store, catalog, uid, lang),
        org_apps=center.org_apps(store, catalog, uid, lang),
        notices=told,
        deletions=deletions,
        app_names={r["client_id"]: app_name(r["client_id"]) for r in deletions},
    )
    notices.mark_seen(store, uid, told)  # shown once as new
    return page


@bp.route("/privacy/apps/<client_id>/revoke", methods=["GET", "POST"])
def revoke_app(client_id: str) -> Any:
    uid = login_required()
    lang = i18n.language()
    held_grant(uid, client_id)
    name = app_name(client_id)
    if request.method == "POST":
        grants_svc.revoke_grant(web.store(), web.settings(), client_id, uid)
        flash(gettext("%(app)s no longer receives anything about you.", app=name), "success")
        return redirect(url_for("privacy.overview"), code=303)
    return _render(
        "privacy/confirm.html",
        lang,
        question=gettext(
            "Remove %(app)s? It will stop receiving anything about you at once. "
            "What it already received is not undone.",
            app=name,
        ),
        app_name=name,
    )


@bp.get("/privacy/apps/<client_id>/explain")
def explain_page(client_id: str) -> Any:
    """ "Why does this app get my nickname?": the gate's own rule on the person's grant, field by field."""
    uid = login_required()
    lang = i18n.language()
    if get_app(web.store(), client_id) is None:
        raise NotFound("no such app")
    catalog = web.catalog()
    rows = explain.explain_grant(web.store(), catalog, client_id, uid)
    described = {n: f.description.get(lang) or f.description["en"] for n, f in catalog.fields.items()}
    return _render("privacy/explain.html", lang, app_name=app_name(client_id), rows=rows, described=described)


@bp.route("/privacy/apps/<client_id>/scopes/add", methods=["GET", "POST"])
def add_scope(client_id: str) -> Any:
    """Incremental consent (issue 14, item 5): the ``grant_url`` of an ``insufficient_scope`` answer.
    The person adds the missing scope to the grant they hold; the app's next token or refresh
    carries it. Works for every client kind: no redirect back to the app is needed."""
    uid = login_required()
    lang = i18n.language()
    held_grant(uid, client_id)
    catalog = web.catalog()
    record = get_app(web.store(), client_id)
    scope = (request.values.get("scope") or "").strip()
    if (
        record is None
        or scope not in catalog.scopes
        or catalog.scopes[scope].audience != "individual"
        or scope not in record["scopes"]
    ):
        raise NotFound("this app does not ask for that scope")
    rows = consent_rows(catalog, [scope], lang, set())
    name = app_name(client_id)
    if request.method == "POST":
        if request.form.get("action") != "approve":
            return redirect(url_for("privacy.overview"), code=303)
        chosen = {r.name for r in rows if r.kind == "required"} | (
            set(request.form.getlist("field")) & {r.name for r in rows}
        )
        grants_svc.save_consent(
            web.store(),
            web.settings(),
            catalog,
            client_id,
            uid,
            [scope],
            chosen,
            str(record.get("description") or ""),
            grants_svc.consent_version(
                catalog, [scope], str(held_grant(uid, client_id).get("consent_version") or "")
            ),
        )
        flash(
            gettext("%(app)s may now receive this too; it gets it with its next token.", app=name), "success"
        )
        return redirect(url_for("privacy.overview"), code=303)
    described = catalog.scopes[scope].description.get(lang) or catalog.scopes[scope].description["en"]
    return _render("privacy/add_scope.html", lang, app_name=name, scope=scope, described=described, rows=rows)


@bp.route("/privacy/apps/<client_id>/scopes/<scope>/revoke", methods=["GET", "POST"])
def revoke_scope(client_id: str, scope: str) -> Any:
    uid = login_required()
    lang = i18n.language()
    grant = held_grant(uid, client_id)
    catalog = web.catalog()
    if scope not in grant["scopes"] or scope not in catalog.scopes:
        raise NotFound("the grant does not include this scope")
    name = app_name(client_id)
    if request.method == "POST":
        grants_svc.revoke_scope(web.store(), web.settings(), catalog, client_id, uid, scope)
        flash(gettext("%(app)s no longer receives “%(scope)s”.", app=name, scope=scope), "success")
        return redirect(url_for("privacy.overview"), code=303)
    described = catalog.scopes[scope].description.get(lang) or catalog.scopes[scope].description["en"]
    losing = [f for f in grant["fields"] if f in catalog.scopes[scope].fields]
    question = gettext(
        "Withdraw “%(scope)s” from %(app)s? It will stop receiving these fields at once: %(fields)s.",
        app=name,
        scope=described,
        fields=", ".join(losing),
    )
    return _render("privacy/confirm.html", lang, question=question, app_name=name)


@bp.get("/privacy/disclosures")
def disclosures() -> Any:
    uid = login_required()
    lang = i18n.language()
    store = web.store()
    filters = reading.parse_filters(request.args, person_filter=False)
    jwks = checkpoints.public_jwks(web.keyring())
    page = center.verified_disclosures(
        store, jwks, uid, filters, request.args.get("cursor") or None, PAGE_SIZE
    )
    names = {e["record"]["app"]: app_name(e["record"]["app"]) for e in page.entries}
    org_names = directory.org_names(
        store, (e["record"]["org"] for e in page.entries if e["record"].get("org"))
    )
    filter_apps = {g["client_id"]: app_name(g["client_id"]) for g in grants_svc.grants_of_user(store, uid)}
    filter_apps.update(names)
    base_args: dict[str, Any] = {k: v for k, v in request.args.items() if k in FILTER_ARGS and v}
    next_url = None
    if page.next_cursor:
        next_url = url_for("privacy.disclosures", **base_args, cursor=page.next_cursor)
    return _render(
        "privacy/disclosures.html",
        lang,
        page=page,
        names=names,
        org_names=org_names,
        filter_apps=sorted(filter_apps.items(), key=lambda kv: kv[1]),
        args=base_args,
        next_url=next_url,
        json_url=url_for("ledger.my_disclosures", **base_args),
    )


@bp.get("/privacy/receipts")
def receipts_page() -> Any:
    uid = login_required()
    lang = i18n.language()
    cursor = request.args.get("cursor") or None
    if cursor is not None and not re.fullmatch(r"\d{13}:[0-9a-f-]{36}", cursor):
        raise ValidationFailed("cursor is invalid", fields={"cursor": ["not a cursor from this list"]})
    items, nxt = receipts.list_receipts(web.store(), uid, limit=PAGE_SIZE, cursor=cursor)
    next_url = url_for("privacy.receipts_page", cursor=nxt) if nxt else None
    return _render("privacy/receipts.html", lang, items=items, next_url=next_url)


@bp.get("/privacy/export")
def export_page() -> Any:
    login_required()
    return _render("privacy/export.html", i18n.language())


@bp.route("/privacy/delete", methods=["GET", "POST"])
def delete_page() -> Any:
    uid = login_required()
    lang = i18n.language()
    store, settings = web.store(), web.settings()
    username = directory.user_field(store, uid, "username") or uid
    error = None
    status = 400
    if request.method == "POST":
        if request.form.get("username", "").strip() != username:
            error = gettext("The username does not match.")
        else:
            password = request.form.get("password") or None
            try:
                reauth.require(uid, password)
            except reauth.ReauthRequired:
                error = gettext("The password is wrong.") if password else reauth.message()
                status = 403
            else:
                center.delete_account(store, settings, uid)
                sign_out_here()
                return redirect(url_for("privacy.deleted", lang=lang), code=303)
    html = _render(
        "privacy/delete.html", lang, username=username, error=error, days=settings.ledger_retention_days
    )
    if error:
        html.status_code = status
    return html


@bp.get("/privacy/deleted")
def deleted() -> Any:
    return _render("privacy/deleted.html", i18n.language())
