"""The consent page: field-level consent to one app (issue 4 item 3).

Contract with the authorization endpoint (broker.oauth): it stores
``session["interactions"][iid] = {"client_id", "scopes": [...], "return_to": "<path+query>",
"result": None}`` and redirects to ``/consent/<iid>``. This page records the person's decision in
``result`` ("approved" | "denied"), saves the grant on approval, and sends the browser back to
``return_to`` with ``interaction=<iid>`` (303). Protocol decisions stay in broker.oauth.

Required fields are shown checked and disabled; optional basic fields are pre-ticked and can be
unticked; fields under a scope that needs separate consent get their own unticked checkbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, redirect, render_template, request, session
from flask_babel import gettext

from broker.apps import registry as apps_svc
from broker.consent import grants as grants_svc
from broker.core.catalog import Catalog
from broker.directory import service as directory
from broker.errors import Forbidden, NotFound, ValidationFailed
from broker.web.interactions import csp, i18n
from broker.web.interactions.blueprint import bp
from broker.web.interactions.session import login_required
from broker.web.shared import context as web


def _unknown_request() -> NotFound:
    return NotFound(
        gettext("This consent request is unknown or has expired. Go back to the app and start again.")
    )


# The consent page's own text version: broker.consent.grants.CONSENT_TEXT_VERSION.


@dataclass(frozen=True)
class FieldRow:
    name: str
    kind: str  # required | optional | separate
    description: str
    checked: bool


def consent_version(scopes: list[str], existing: str | None = None) -> str:
    return grants_svc.consent_version(web.catalog(), scopes, existing)


scope_versions = grants_svc.scope_versions
changed_scopes = grants_svc.changed_scopes


def requested_scopes(catalog: Catalog, scopes: list[str], app_record: dict[str, Any]) -> list[str]:
    """The interaction's scopes that a person can consent to for this app, in catalog order."""
    wanted = set(scopes) & set(app_record["scopes"])
    return [s for s, scope in catalog.scopes.items() if s in wanted and scope.audience == "individual"]


def field_rows(catalog: Catalog, scopes: list[str], lang: str, granted: set[str]) -> list[FieldRow]:
    plain = catalog.fields_of(s for s in scopes if not catalog.scopes[s].separate_consent)
    reachable = catalog.fields_of(scopes)
    rows = []
    for name, field in catalog.fields.items():
        if name not in reachable:
            continue
        description = field.description.get(lang) or field.description["en"]
        if field.required:
            rows.append(FieldRow(name, "required", description, True))
        elif name in plain:
            rows.append(FieldRow(name, "optional", description, True))
        else:
            rows.append(FieldRow(name, "separate", description, name in granted))
    return rows


def _interaction(iid: str, lang: str) -> dict[str, Any]:
    found = (session.get("interactions") or {}).get(iid)
    if not isinstance(found, dict) or not isinstance(found.get("client_id"), str):
        raise _unknown_request()
    return found


def _safe_return_to(value: Any, lang: str) -> str:
    """Only a local path: never an open redirect (RFC 9700 4.11)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith(("//", "/\\")):
        raise _unknown_request()
    return value


def _app_for(interaction: dict[str, Any], lang: str) -> dict[str, Any]:
    record = apps_svc.get_app(web.store(), interaction["client_id"])
    if record is None:
        raise _unknown_request()
    if record["status"] != "active":
        raise Forbidden(gettext("This app is not available at the moment."))
    return record


def _purpose(app_record: dict[str, Any], lang: str) -> str:
    return str(
        app_record.get("description")
        or gettext("Sign in and show your basic profile in %(app)s", app=app_record["name"])
    )


@bp.route("/consent/<iid>", methods=["GET", "POST"])
def consent(iid: str) -> Any:
    lang = i18n.language()
    uid = login_required()
    interaction = _interaction(iid, lang)
    return_to = _safe_return_to(interaction.get("return_to"), lang)
    app_record = _app_for(interaction, lang)
    catalog = web.catalog()
    scopes = requested_scopes(catalog, list(interaction.get("scopes") or []), app_record)
    existing = grants_svc.get_grant(web.store(), app_record["client_id"], uid)
    rows = field_rows(catalog, scopes, lang, set(existing["fields"]) if existing else set())

    if request.method == "POST":
        return _decide(iid, interaction, return_to, app_record, uid, scopes, rows, lang)

    developer = directory.user_field(web.store(), app_record["developer_id"], "nickname")
    html = render_template(
        "consent.html",
        app=app_record,
        developer=developer or gettext("unknown developer"),
        purpose=_purpose(app_record, lang),
        required=[r for r in rows if r.kind == "required"],
        optional=[r for r in rows if r.kind == "optional"],
        separate=[r for r in rows if r.kind == "separate"],
        label={e["field"]: e for e in app_record.get("data_label") or []},
        reconsent=[
            (catalog.scopes[s].description.get(lang) or catalog.scopes[s].description["en"])
            for s in interaction.get("reconsent") or []
            if s in catalog.scopes
        ],
        iid=iid,
    )
    return csp.allow_app_redirects(Response(html, mimetype="text/html"), app_record["client_id"])


def _decide(
    iid: str,
    interaction: dict[str, Any],
    return_to: str,
    app_record: dict[str, Any],
    uid: str,
    scopes: list[str],
    rows: list[FieldRow],
    lang: str,
) -> Response:
    action = request.form.get("action")
    if action not in {"approve", "deny"}:
        raise ValidationFailed(
            gettext("Choose Allow or Deny."), fields={"action": ["must be approve or deny"]}
        )
    existing = grants_svc.get_grant(web.store(), app_record["client_id"], uid)
    existing_version = str(existing.get("consent_version") or "") if existing else None
    if existing_version and not scope_versions(existing_version):
        existing_version = None  # written before per-scope versions: nothing of it to keep
    ticked = set(request.form.getlist("field"))
    offered = {r.name for r in rows}
    if ticked - offered:
        raise ValidationFailed(
            gettext("The form lists a field this app did not ask for."),
            fields={"field": sorted(ticked - offered)},
        )
    result = "denied"
    if action == "approve" and scopes:
        chosen = ticked | {r.name for r in rows if r.kind == "required"}
        grant = grants_svc.save_consent(
            web.store(),
            web.settings(),
            web.catalog(),
            app_record["client_id"],
            uid,
            scopes,
            chosen,
            _purpose(app_record, lang),
            consent_version(scopes, existing_version),
        )
        result = "approved" if grant is not None else "denied"
    elif interaction.get("reconsent"):
        # Declined to agree again: the grant keeps only what did not change.
        for scope in interaction["reconsent"]:
            try:
                grants_svc.revoke_scope(
                    web.store(), web.settings(), web.catalog(), app_record["client_id"], uid, scope
                )
            except NotFound:
                continue
    interactions = dict(session.get("interactions") or {})
    interactions[iid] = {**interaction, "result": result}
    session["interactions"] = interactions
    session.modified = True
    separator = "&" if "?" in return_to else "?"
    return redirect(f"{return_to}{separator}interaction={iid}", code=303)  # type: ignore[return-value]
