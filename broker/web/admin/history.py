"""The admin console's history pages (issue 13, item 9): what the organization's apps received about
its members (``/admin/orgs/<oid>/disclosures``) and the audit trail (``/admin/orgs/<oid>/audit``), as
tables with names and dates, filters in a GET form and paging by cursor; never an id on the screen.

Filters are chosen, not typed: apps and people from selects (their ids are only option values), dates
from date inputs read as whole UTC days, the zone every console table shows. A filter the page cannot
use (an unparsable date, an app or person the organization does not know, a foreign cursor) is a 400
page that says which one and why.
"""

from __future__ import annotations

from typing import Any

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.consent import org_admin, org_policy
from broker.consent.org_policy import AUDIT_READ, DISCLOSURES_READ
from broker.directory import departments
from broker.errors import ValidationFailed
from broker.ledger import reading
from broker.web.admin import pages as _pages  # noqa: F401 - declares the audit route this module serves
from broker.web.admin.console import _member_rows, _names, _org, _page, _role, bp
from broker.web.interactions import session as login_session
from broker.web.shared import context as web
from broker.web.shared.history import PAGE_SIZE, cursor, day_bounds, filter_args, page_url, problems

DISCLOSURE_FILTERS = ("app", "member", "since", "until")
AUDIT_FILTERS = ("what", "who")


# -- disclosures ------------------------------------------------------------------------------------


@bp.get("/admin/orgs/<oid>/disclosures")
def disclosures_page(oid: str) -> Any:
    """Every record about the org's members made through its installations, newest first,
    filtered by app, member and days, a page at a time."""
    _role(oid, DISCLOSURES_READ)
    store = web.store()
    app_names = {a["client_id"]: a["name"] for a in apps_svc.list_apps(store)}
    installed = inst_svc.installed_client_ids(store, oid)
    apps = sorted(((c, app_names.get(c, c)) for c in installed), key=lambda kv: kv[1].casefold())
    members = sorted(
        (
            (m["user_id"], m["nickname"] or m["username"])
            for m in _member_rows(oid)
            if m["nickname"] or m["username"]
        ),
        key=lambda kv: kv[1].casefold(),
    )
    args = filter_args(DISCLOSURE_FILTERS)
    since, until, errors = day_bounds(args)
    if args.get("app") and args["app"] not in installed and args["app"] not in app_names:
        errors["app"] = ["not an app of this organization"]
    if args.get("member") and args["member"] not in {uid for uid, _ in members}:
        errors["member"] = ["not a member of this organization"]
    page = reading.Page()
    given = cursor()
    if not errors:
        filters = reading.Filters(since, until, args.get("app"), args.get("member"), newest_first=True)
        try:
            page = reading.records_for_org(store, oid, filters, given, PAGE_SIZE)
        except ValidationFailed as exc:
            errors = problems(exc)
    rows = [{**entry["record"], "delivered": entry.get("delivered", True)} for entry in page.records]
    people = _names(sorted({str(r["person"]) for r in rows if r.get("person")}))
    return _page(
        "admin/disclosures.html",
        400 if errors else 200,
        org=_org(oid),
        rows=rows,
        app_names=app_names,
        people={uid: name for uid, name in people.items() if name != uid},
        apps=apps,
        members=members,
        args=args,
        errors=errors,
        next_url=(
            page_url("admin.disclosures_page", args, page.next_cursor, oid=oid)
            if page.next_cursor and not errors
            else None
        ),
        first_url=page_url("admin.disclosures_page", args, oid=oid) if given else None,
    )


# -- audit trail ------------------------------------------------------------------------------------


@bp.get("/admin/orgs/<oid>/audit")
def audit_page(oid: str) -> Any:
    """The audit trail as a table, newest first: who (by name), what, when, the details with people
    and apps named; filtered by action and person, a page at a time."""
    _role(oid, AUDIT_READ)
    store = web.store()
    actions, actors = org_admin.audit_choices(store, oid)
    args = filter_args(AUDIT_FILTERS)
    given = cursor()
    errors: dict[str, list[str]] = {}
    page = org_admin.AuditPage()
    try:
        page = org_admin.audit_page(
            store, oid, limit=PAGE_SIZE, cursor=given, what=args.get("what"), who=args.get("who")
        )
    except ValidationFailed as exc:
        errors = problems(exc)
    rows = page.entries
    people = set(actors) | {r["who"] for r in rows}
    for r in rows:
        people |= {str(v) for k, v in r["details"].items() if k in ("user", "requester") and v}
    known = {uid: name for uid, name in _names(sorted(people)).items() if name != uid}
    who_choices = [(uid, known[uid]) for uid in actors if uid in known]
    who_choices.sort(key=lambda kv: kv[1].casefold())
    if org_admin.PLATFORM_ACTOR in actors:
        who_choices.append((org_admin.PLATFORM_ACTOR, ""))  # named by the template
    if args.get("what") and "what" not in errors and args["what"] not in actions:
        actions = sorted({*actions, args["what"]})
    apps = {a["client_id"]: a["name"] for a in apps_svc.list_apps(store)}
    return _page(
        "admin/audit.html",
        400 if errors else 200,
        departments={d["id"]: d["path"] for d in departments.listing(store, oid)},
        org=_org(oid),
        rows=rows,
        names=known,
        apps=apps,
        actions=actions,
        who_choices=who_choices,
        args=args,
        errors=errors,
        next_url=(
            page_url("admin.audit_page", args, page.next_cursor, oid=oid) if page.next_cursor else None
        ),
        first_url=page_url("admin.audit_page", args, oid=oid) if given else None,
    )


# -- the admin nav ----------------------------------------------------------------------------------


@bp.context_processor
def _history_links() -> dict[str, Any]:
    """``may_read_disclosures(org_id)`` for the nav every admin page includes."""

    def may_read_disclosures(oid: str) -> bool:
        uid = login_session.current_user_id()
        return uid is not None and org_policy.can(web.store(), oid, uid, DISCLOSURES_READ)

    return {"may_read_disclosures": may_read_disclosures}
