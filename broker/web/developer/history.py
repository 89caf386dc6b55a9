"""The developer console's disclosure history of one app (issue 13, item 9): a table of what the app
received, people named by the pairwise id the app itself was given (never the platform's id, issue
14 item 1), organizations by name; filters (person by that id, organization, UTC days) in a GET form
and paging by cursor. Only the app's owner reads it; anyone else's app is the same 404."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Response, render_template

from broker.apps import registry as apps_svc
from broker.directory import service as directory
from broker.errors import ValidationFailed
from broker.ledger import reading
from broker.web.developer.console import _me, _own_app, bp
from broker.web.shared import context as web
from broker.web.shared.history import PAGE_SIZE, cursor, day_bounds, filter_args, page_url, problems
from broker.web.shared.responses import no_store

FILTERS = ("person", "org", "since", "until")


@bp.get("/developer/apps/<client_id>/disclosures")
def disclosures_page(client_id: str) -> Any:
    """The app's records newest first; ``org`` reads the organization's view of
    this app's records (installations only), ``person`` the records about whoever the app knows by
    that id."""
    record = _own_app(_me(), client_id)
    store, key = web.store(), web.settings().pairwise_key
    org_ids = apps_svc.installation_org_ids(store, client_id)
    args = filter_args(FILTERS)
    since, until, errors = day_bounds(args)
    if args.get("org") and args["org"] not in org_ids:
        errors["org"] = ["your app is not installed in that organization"]
    person = None
    if args.get("person") and "person" not in errors:
        person = reading.pairwise_person(store, key, [client_id], args["person"][:64])
        if person is None:
            errors["person"] = ["your app knows nobody by this id"]
    page = reading.Page()
    given = cursor()
    if not errors:
        filters = reading.Filters(since, until, None, person, newest_first=True)
        try:
            if args.get("org"):
                page = reading.records_for_org(
                    store, args["org"], replace(filters, app=client_id), given, PAGE_SIZE
                )
            else:
                page = reading.records_for_app(store, client_id, filters, given, PAGE_SIZE)
        except ValidationFailed as exc:
            errors = problems(exc)
    rows = [
        {**reading.as_seen_by_app(entry["record"], key), "delivered": entry.get("delivered", True)}
        for entry in page.records
    ]
    org_names = directory.org_names(store, [*org_ids, *(str(r["org"]) for r in rows if r.get("org"))])
    html = render_template(
        "developer/disclosures.html",
        app=record,
        rows=rows,
        org_names=org_names,
        orgs=sorted(((o, org_names.get(o, o)) for o in org_ids), key=lambda kv: kv[1].casefold()),
        args=args,
        errors=errors,
        next_url=(
            page_url("developer.disclosures_page", args, page.next_cursor, client_id=client_id)
            if page.next_cursor
            else None
        ),
        first_url=page_url("developer.disclosures_page", args, client_id=client_id) if given else None,
    )
    return no_store(Response(html, status=400 if errors else 200, mimetype="text/html"))
