"""Readable history pages with filters and paging (issue 13, item 9): the admin's disclosures page,
the audit trail (page and JSON API) and the developer's disclosures page. People and apps are named,
never shown by id; filters are chosen from what the page knows; every page of a listing is reached
by following its links; a filter the page cannot use is a 400 that says which one."""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.consent import org_admin
from broker.core import catalog as catalog_mod
from broker.core.pairwise import pairwise_id
from broker.directory import departments
from broker.directory.service import set_role
from broker.web.admin import history as admin_history
from broker.web.developer import history as developer_history
from tests.support.apps import org_payload
from tests.support.client import bearer
from tests.support.developer import notes_and_roster
from tests.support.factories import make_org, make_token, make_user
from tests.support.privacy import sequence
from tests.support.signin import session_sign_in


@dataclass
class Org:
    oid: str
    owner: str
    reader: str  # a sub-admin holding disclosures.read only
    apps_sub: str  # a sub-admin holding apps.manage only
    member: str
    outsider: str
    dev: str
    roster: str
    payroll: str
    people: tuple[str, ...]


def _org_token(store: Any, settings: Any, client_id: str, oid: str) -> str:
    inst = inst_svc.require_installation(store, client_id, oid)
    return make_token(
        store,
        settings,
        client_id,
        kind="installation",
        subject=oid,
        grant_id=inst["id"],
        scopes="org.members.read",
    )


@pytest.fixture
def org(app: Any, client: Any, store: Any, settings: Any) -> Org:
    """Acme with five members and two installed apps; Roster read the member list twice, Payroll
    once: 15 records in the ledger, sequenced."""
    app.config["WTF_CSRF_ENABLED"] = False
    people = {
        n: make_user(store, username=n, nickname=n.capitalize())
        for n in ("owner", "reader", "appsub", "member", "zed", "outsider")
    }
    members = [people[n] for n in ("owner", "reader", "appsub", "member", "zed")]
    oid = make_org(store, members, name="Acme")
    set_role(store, oid, people["owner"], "owner")
    set_role(store, oid, people["reader"], "sub_admin", ["disclosures.read"])
    set_role(store, oid, people["appsub"], "sub_admin", ["apps.manage"])
    catalog = catalog_mod.load(settings.scopes_dir)
    dev = make_user(store, username="dev", nickname="Devon")
    roster, _, _ = apps_svc.register_app(store, settings, catalog, org_payload(dev, name="Roster"))
    payroll, _, _ = apps_svc.register_app(store, settings, catalog, org_payload(dev, name="Payroll"))
    for a in (roster, payroll):
        inst_svc.install(store, a["client_id"], oid, ["org.members.read"], installed_by=people["owner"])
    for cid, times in ((roster["client_id"], 2), (payroll["client_id"], 1)):
        token = _org_token(store, settings, cid, oid)
        for _ in range(times):
            assert client.get(f"/v1/orgs/{oid}/members", headers=bearer(token)).status_code == 200
    sequence(store, settings)
    return Org(
        oid,
        people["owner"],
        people["reader"],
        people["appsub"],
        people["member"],
        people["outsider"],
        dev,
        roster["client_id"],
        payroll["client_id"],
        tuple(members),
    )


# -- reading the pages ------------------------------------------------------------------------------


def visible(page: str) -> str:
    """What a person reads: the page without attribute values that only a browser uses (option
    values, link targets)."""
    return re.sub(r'(value|href|action)="[^"]*"', "", page)


def column(page: str, cls: str) -> list[str]:
    return [
        html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip()
        for c in re.findall(rf'<td class="{cls}"[^>]*>(.*?)</td>', page, re.S)
    ]


def link(page: str, cls: str) -> str | None:
    found = re.search(rf'<a class="{cls}"[^>]*href="([^"]+)"', page)
    return html_lib.unescape(found.group(1)) if found else None


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def every_page(client: Any, url: str, cls: str) -> tuple[list[str], list[str]]:
    """The ``cls`` column of every page, following the next-page links; and the pages' URLs."""
    seen: list[str] = []
    urls = [url]
    while True:
        response = client.get(urls[-1])
        assert response.status_code == 200, urls[-1]
        page = response.get_data(as_text=True)
        seen += column(page, cls)
        nxt = link(page, "next-page")
        if nxt is None:
            return seen, urls
        assert len(urls) < 50, "the pager does not end"
        urls.append(nxt)


def utc_day(ts: float, shift: int = 0) -> str:
    return (datetime.fromtimestamp(ts, tz=UTC) + timedelta(days=shift)).strftime("%Y-%m-%d")


def record_times(client: Any, oid: str) -> list[float]:
    records = client.get(f"/admin/v1/orgs/{oid}/disclosures?limit=100").get_json()["records"]
    return [float(e["record"]["time"]) for e in records]


# -- the admin's disclosures page -------------------------------------------------------------------


def test_the_admin_disclosures_page_names_apps_and_members_and_never_shows_ids(client, org) -> None:
    session_sign_in(client, org.owner)
    response = client.get(f"/admin/orgs/{org.oid}/disclosures")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert page.count('<tr class="disclosure') == 15
    assert sorted(set(column(page, "app"))) == ["Payroll", "Roster"]
    assert sorted(set(column(page, "person"))) == ["Appsub", "Member", "Owner", "Reader", "Zed"]
    assert set(column(page, "delivered")) == {"delivered"}
    assert all(f == "user_id, nickname, avatar" or f for f in column(page, "fields"))
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">', page)  # the consoles' date format
    shown = visible(page)
    for uid in (*org.people, org.roster, org.payroll):
        assert uid not in shown
    assert '{"' not in page  # a table, never raw JSON
    # the filters are chosen by name: the org's installed apps and its members
    assert re.search(rf'<option value="{org.roster}"[^>]*>Roster</option>', page)
    assert re.search(rf'<option value="{org.member}"[^>]*>Member</option>', page)
    assert org.outsider not in page
    assert link(page, "next-page") is None and link(page, "first-page") is None


def test_the_admin_filters_disclosures_by_app_member_and_day(client, org) -> None:
    session_sign_in(client, org.owner)
    base = f"/admin/orgs/{org.oid}/disclosures"
    by_app = client.get(f"{base}?app={org.payroll}").get_data(as_text=True)
    assert column(by_app, "app") == ["Payroll"] * 5
    assert re.search(rf'<option value="{org.payroll}" selected>', by_app)
    by_member = client.get(f"{base}?member={org.member}").get_data(as_text=True)
    assert column(by_member, "person") == ["Member"] * 3
    both = client.get(f"{base}?member={org.member}&app={org.roster}").get_data(as_text=True)
    assert column(both, "person") == ["Member"] * 2 and set(column(both, "app")) == {"Roster"}

    times = record_times(client, org.oid)
    first, last = min(times), max(times)
    whole = client.get(f"{base}?since={utc_day(first)}&until={utc_day(last)}").get_data(as_text=True)
    assert whole.count('<tr class="disclosure') == 15  # until includes its whole day
    after = client.get(f"{base}?since={utc_day(last, 1)}").get_data(as_text=True)
    before = client.get(f"{base}?until={utc_day(first, -1)}").get_data(as_text=True)
    for empty in (after, before):
        assert 'class="disclosure' not in empty and 'id="no-disclosures"' in empty


def test_the_admin_pages_through_disclosures_with_the_filters_kept(client, org, monkeypatch) -> None:
    monkeypatch.setattr(admin_history, "PAGE_SIZE", 4)
    session_sign_in(client, org.owner)
    base = f"/admin/orgs/{org.oid}/disclosures"
    people, urls = every_page(client, base, "person")
    assert len(people) == 15 and len(urls) == 4  # 4 + 4 + 4 + 3
    assert sorted(people) == sorted(["Appsub", "Member", "Owner", "Reader", "Zed"] * 3)
    second = client.get(urls[1]).get_data(as_text=True)
    assert link(second, "first-page") == base
    # the filters travel with the cursor, and "back to the earliest" keeps them
    apps, urls = every_page(client, f"{base}?app={org.roster}", "app")
    assert apps == ["Roster"] * 10 and len(urls) == 3
    assert all(query(u)["app"] == [org.roster] for u in urls)
    last = client.get(urls[-1]).get_data(as_text=True)
    assert query(link(last, "first-page") or "") == {"app": [org.roster]}
    # newest first: Payroll read the members last
    every_app, _ = every_page(client, base, "app")
    assert every_app == ["Payroll"] * 5 + ["Roster"] * 10
    # the pages together are the JSON API's records (order=newest), in the same order
    api = client.get(f"/admin/v1/orgs/{org.oid}/disclosures?limit=100&order=newest").get_json()["records"]
    names = {
        uid: name
        for uid, name in zip(org.people, ("Owner", "Reader", "Appsub", "Member", "Zed"), strict=True)
    }
    assert [names[e["record"]["person"]] for e in api] == people


@pytest.mark.parametrize(
    ("query_string", "field", "message"),
    [
        ("since=yesterday", "since", "expected a date such as 2026-11-29"),
        ("until=2026-02-30", "until", "expected a date such as 2026-11-29"),
        ("since=2026-03-02&until=2026-03-01", "until", "must not be before since"),
        ("app=app_0000000000000000", "app", "not an app of this organization"),
        ("app=Roster", "app", "not an app of this organization"),
        ("member=usr_0000000000000000", "member", "not a member of this organization"),
        ("member=Member", "member", "not a member of this organization"),
        ("cursor=not-a-cursor", "cursor", "not a cursor from this listing"),
    ],
)
def test_a_filter_the_admin_page_cannot_use_is_a_400_that_names_it(
    client, org, query_string, field, message
) -> None:
    session_sign_in(client, org.owner)
    response = client.get(f"/admin/orgs/{org.oid}/disclosures?{query_string}")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    problem = re.search(rf'<li data-field="{field}">([^<]*)</li>', page)
    assert problem is not None and message in html_lib.unescape(problem.group(1))
    assert 'class="disclosure' not in page and 'id="filter-problems"' in page


def test_a_cursor_of_another_filter_is_refused(client, org, monkeypatch) -> None:
    monkeypatch.setattr(admin_history, "PAGE_SIZE", 4)
    session_sign_in(client, org.owner)
    page = client.get(f"/admin/orgs/{org.oid}/disclosures").get_data(as_text=True)
    cursor = query(link(page, "next-page") or "")["cursor"][0]
    other = client.get(f"/admin/orgs/{org.oid}/disclosures?app={org.roster}&cursor={cursor}")
    assert other.status_code == 400 and 'data-field="cursor"' in other.get_data(as_text=True)


def test_who_may_open_the_admin_disclosures_page_and_where_it_is_linked(client, org) -> None:
    url = f"/admin/orgs/{org.oid}/disclosures"
    session_sign_in(client, org.outsider)
    assert client.get(url).status_code == 404
    session_sign_in(client, org.member)
    assert client.get(url).status_code == 403
    session_sign_in(client, org.apps_sub)  # a sub-admin without disclosures.read: no link either
    assert client.get(url).status_code == 403
    assert f'href="{url}"' not in client.get(f"/admin/orgs/{org.oid}/app-center").get_data(as_text=True)
    session_sign_in(client, org.reader)  # a sub-admin with disclosures.read
    assert client.get(url).status_code == 200
    for path in ("app-center", "disclosures"):
        nav = client.get(f"/admin/orgs/{org.oid}/{path}").get_data(as_text=True).split("</nav>")[0]
        assert f'<a href="{url}">Disclosures</a>' in nav, path
    session_sign_in(client, org.owner)
    overview = client.get(f"/admin/orgs/{org.oid}/").get_data(as_text=True)
    assert f'<a href="{url}" id="all-disclosures">All disclosures</a>' in overview


# -- the audit trail --------------------------------------------------------------------------------


def _trail(store: Any, org: Org) -> None:
    """Seven entries, oldest first: three by the owner, two by Reader, two by the platform."""
    for who, what, details in (
        (org.owner, "installation.installed", {"app": org.roster}),
        (org.owner, "installation.installed", {"app": org.payroll}),
        (org.reader, "member.added", {"user": org.member}),
        ("platform", "member.added", {"user": org.apps_sub}),
        (org.owner, "installation.disabled", {"app": org.roster}),
        (org.reader, "member.removed", {"user": org.member}),
        ("platform", "installation.removed", {"app": org.payroll}),
    ):
        org_admin.audit(store, org.oid, who, what, details)


def test_the_audit_page_filters_by_action_and_person_chosen_by_name(client, store, org) -> None:
    _trail(store, org)
    session_sign_in(client, org.owner)
    base = f"/admin/orgs/{org.oid}/audit"
    page = client.get(base).get_data(as_text=True)
    assert page.count('<tr class="audit">') == 7
    assert (
        column(page, "who")[0] == "the platform operator" and column(page, "who")[-1] == "Owner"
    )  # newest first
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', page)
    assert ("member.added", "member.added") in options and (
        "installation.removed",
        "installation.removed",
    ) in options
    assert (org.reader, "Reader") in options and ("platform", "the platform operator") in options
    shown = visible(page)
    for uid in (*org.people, org.roster, org.payroll):
        assert uid not in shown

    added = client.get(f"{base}?what=member.added").get_data(as_text=True)
    assert column(added, "what") == ["member.added", "member.added"]
    assert column(added, "who") == ["the platform operator", "Reader"]
    by_reader = client.get(f"{base}?who={org.reader}").get_data(as_text=True)
    assert column(by_reader, "what") == ["member.removed", "member.added"]
    both = client.get(f"{base}?who=platform&what=installation.removed").get_data(as_text=True)
    assert column(both, "what") == ["installation.removed"]
    none = client.get(f"{base}?who={org.member}").get_data(as_text=True)
    assert 'class="audit"' not in none and "No admin actions match." in none


def test_the_audit_page_names_departments_and_hides_request_ids(client, store, org) -> None:
    eng = departments.create(store, org.oid, "Engineering")["id"]
    web = departments.create(store, org.oid, "Web", eng)["id"]
    for what, details in (
        ("department.created", {"department": web, "name": "Web"}),
        ("department.deleted", {"department": "dep_0000000000000000", "name": "Sales"}),
        ("installation.departments", {"app": org.roster, "departments": [eng, web]}),
        ("installation.departments", {"app": org.payroll, "departments": None}),
        ("request.approved", {"request": "req_0123456789abcdef", "app": org.roster, "requester": org.member}),
    ):
        org_admin.audit(store, org.oid, org.owner, what, details)
    session_sign_in(client, org.owner)
    page = client.get(f"/admin/orgs/{org.oid}/audit").get_data(as_text=True)
    assert column(page, "details") == [
        "app: Roster; requester: Member",
        "app: Payroll; departments: the whole organization",
        "app: Roster; departments: Engineering, Engineering / Web",
        "department: Sales; name: Sales",
        "department: Engineering / Web; name: Web",
    ]
    assert "dep_" not in visible(page) and "req_" not in page


def test_the_audit_page_pages_older_and_back_to_the_newest(client, store, org, monkeypatch) -> None:
    monkeypatch.setattr(admin_history, "PAGE_SIZE", 3)
    _trail(store, org)
    session_sign_in(client, org.owner)
    base = f"/admin/orgs/{org.oid}/audit"
    whats, urls = every_page(client, base, "what")
    assert whats == [
        "installation.removed",
        "member.removed",
        "installation.disabled",
        "member.added",
        "member.added",
        "installation.installed",
        "installation.installed",
    ]
    assert len(urls) == 3
    older = client.get(urls[1]).get_data(as_text=True)
    assert ">Older</a>" in older and link(older, "first-page") == base
    assert re.search(r'class="first-page"[^>]*>Newest</a>', older)
    by_owner, urls = every_page(client, f"{base}?who={org.owner}", "who")
    assert by_owner == ["Owner"] * 3 and all(query(u)["who"] == [org.owner] for u in urls)


@pytest.mark.parametrize(
    ("query_string", "field"),
    [("what=DROP TABLE", "what"), ("who=Reader", "who"), ("who=usr_1", "who"), ("cursor=abc", "cursor")],
)
def test_a_filter_the_audit_page_cannot_use_is_a_400_that_names_it(
    client, store, org, query_string, field
) -> None:
    _trail(store, org)
    session_sign_in(client, org.owner)
    response = client.get(f"/admin/orgs/{org.oid}/audit?{query_string}")
    assert response.status_code == 400 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert f'<li data-field="{field}">' in page and 'class="audit"' not in page


def test_the_audit_api_pages_and_filters_with_a_next_cursor(client, store, org) -> None:
    _trail(store, org)
    session_sign_in(client, org.owner)
    base = f"/admin/v1/orgs/{org.oid}/audit"
    everything = client.get(base).get_json()
    assert len(everything["audit"]) == 7 and everything["next_cursor"] is None
    got: list[str] = []
    cursor = None
    while True:
        body = client.get(
            base, query_string={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).get_json()
        got += [e["id"] for e in body["audit"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["audit"]) == 2
    assert got == [e["id"] for e in everything["audit"]]
    added = client.get(base, query_string={"what": "member.added", "limit": 1}).get_json()
    assert [e["who"] for e in added["audit"]] == ["platform"] and added["next_cursor"]
    rest = client.get(base, query_string={"what": "member.added", "cursor": added["next_cursor"]}).get_json()
    assert [e["who"] for e in rest["audit"]] == [org.reader] and rest["next_cursor"] is None
    assert [e["what"] for e in client.get(f"{base}?who={org.reader}").get_json()["audit"]] == [
        "member.removed",
        "member.added",
    ]
    for bad in ("limit=0", "limit=201", "cursor=nope", "who=Reader", "what=x"):
        refused = client.get(f"{base}?{bad}")
        assert refused.status_code == 400, bad
        assert refused.get_json()["error"] == "invalid_request", bad
    session_sign_in(client, org.member)
    assert client.get(base).status_code == 403


def test_a_filtered_audit_page_reads_a_bounded_part_of_the_trail_and_says_where_to_go_on(
    store, org, monkeypatch
) -> None:
    """A rare action in a long trail: each page reads at most AUDIT_SCAN entries and hands out a
    cursor to read on from, so no page scans the whole stream; following the cursors finds every one."""
    monkeypatch.setattr(org_admin, "AUDIT_SCAN", 10)
    org_admin.audit(store, org.oid, org.owner, "sub_admin.appointed", {"user": org.reader})
    for n in range(25):
        org_admin.audit(store, org.oid, org.owner, "member.added", {"n": n})
    org_admin.audit(store, org.oid, org.owner, "sub_admin.appointed", {"user": org.member})
    pages = []
    cursor = None
    while True:
        page = org_admin.audit_page(store, org.oid, limit=5, cursor=cursor, what="sub_admin.appointed")
        pages.append([e["details"]["user"] for e in page.entries])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [u for p in pages for u in p] == [org.member, org.reader]
    assert len(pages) == 3 and pages[1] == []  # 10 + 10 + 7 entries read
    # without filters, the existing callers' default: the newest 200, newest first
    assert [e["what"] for e in org_admin.audit_trail(store, org.oid)][:2] == [
        "sub_admin.appointed",
        "member.added",
    ]
    assert len(org_admin.audit_trail(store, org.oid, limit=3)) == 3


# -- the developer's disclosures page ---------------------------------------------------------------


@dataclass
class Dev:
    dev: str
    other_dev: str
    mini: str
    org_app: str
    oid: str
    alice: str
    bob: str


@pytest.fixture
def devworld(app: Any, client: Any, store: Any, settings: Any) -> Dev:
    """Notes (a mini-program Alice granted, read three times) and Roster (installed in Acme, its
    two members read twice): 7 records."""
    app.config["WTF_CSRF_ENABLED"] = False
    w = notes_and_roster(client, store, settings, me_reads=3, member_reads=2)
    other_dev = make_user(store, username="mallory")
    return Dev(w.dev, other_dev, w.mini, w.org_app, w.oid, w.alice, w.bob)


def test_the_developer_page_names_people_by_the_ids_the_app_knows(client, settings, devworld) -> None:
    w = devworld
    session_sign_in(client, w.dev)
    app_page = client.get(f"/developer/apps/{w.org_app}").get_data(as_text=True)
    assert f'<a href="/developer/apps/{w.org_app}/disclosures" id="all-disclosures">' in app_page
    response = client.get(f"/developer/apps/{w.org_app}/disclosures")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    seen = {pairwise_id(settings.pairwise_key, w.org_app, u, w.oid) for u in (w.alice, w.bob)}
    assert sorted(column(page, "person")) == sorted([*seen, *seen])
    assert column(page, "org") == ["Acme"] * 4
    assert w.alice not in page and w.bob not in page and '{"' not in page
    notes = client.get(f"/developer/apps/{w.mini}/disclosures").get_data(as_text=True)
    assert column(notes, "person") == [pairwise_id(settings.pairwise_key, w.mini, w.alice)] * 3
    assert column(notes, "org") == ["the person's own consent"] * 3
    assert 'name="org"' not in notes  # installed nowhere: no organization to choose


def test_the_developer_filters_by_person_organization_and_day(client, settings, devworld) -> None:
    w = devworld
    session_sign_in(client, w.dev)
    base = f"/developer/apps/{w.org_app}/disclosures"
    bob_seen = pairwise_id(settings.pairwise_key, w.org_app, w.bob, w.oid)
    page = client.get(f"{base}?person={bob_seen}").get_data(as_text=True)
    assert column(page, "person") == [bob_seen, bob_seen]
    assert f'value="{bob_seen}"' in page  # the filter shows the id the developer typed
    in_org = client.get(f"{base}?org={w.oid}").get_data(as_text=True)
    assert len(column(in_org, "person")) == 4 and re.search(
        rf'<option value="{w.oid}" selected>Acme</option>', in_org
    )
    times = [
        float(e["record"]["time"])
        for e in client.get(f"/developer/v1/apps/{w.org_app}/disclosures").get_json()["records"]
    ]
    day, later = utc_day(min(times)), utc_day(max(times), 1)
    assert len(column(client.get(f"{base}?org={w.oid}&since={day}").get_data(as_text=True), "person")) == 4
    empty = client.get(f"{base}?since={later}").get_data(as_text=True)
    assert 'id="no-disclosures"' in empty and not column(empty, "person")


def test_the_developer_pages_through_with_the_filters_kept(client, settings, devworld, monkeypatch) -> None:
    monkeypatch.setattr(developer_history, "PAGE_SIZE", 2)
    w = devworld
    session_sign_in(client, w.dev)
    people, urls = every_page(client, f"/developer/apps/{w.mini}/disclosures", "person")
    assert people == [pairwise_id(settings.pairwise_key, w.mini, w.alice)] * 3 and len(urls) == 2
    orgs, urls = every_page(
        client, f"/developer/apps/{w.org_app}/disclosures?org={w.oid}&since=2000-01-01", "org"
    )
    assert orgs == ["Acme"] * 4 and len(urls) == 2
    assert all(query(u)["org"] == [w.oid] and query(u)["since"] == ["2000-01-01"] for u in urls)
    last = client.get(urls[-1]).get_data(as_text=True)
    assert query(link(last, "first-page") or "") == {"org": [w.oid], "since": ["2000-01-01"]}


def test_only_the_owner_opens_the_developer_page_and_bad_filters_are_400(client, settings, devworld) -> None:
    w = devworld
    session_sign_in(client, w.other_dev)
    assert client.get(f"/developer/apps/{w.mini}/disclosures").status_code == 404
    session_sign_in(client, w.dev)
    base = f"/developer/apps/{w.org_app}/disclosures"
    alice_in_notes = pairwise_id(settings.pairwise_key, w.mini, w.alice)
    for query_string, field in (
        ("since=29/11/2026", "since"),
        ("until=2026-13-01", "until"),
        ("org=org_0000000000000000", "org"),
        ("person=nobody", "person"),
        (f"person={w.alice}", "person"),  # the platform's id is not one the app knows
        (f"person={alice_in_notes}", "person"),  # another app's id for her
        ("cursor=zzz", "cursor"),
    ):
        response = client.get(f"{base}?{query_string}")
        assert response.status_code == 400, query_string
        page = response.get_data(as_text=True)
        assert f'<li data-field="{field}">' in page, query_string
        assert w.alice not in visible(page) and w.bob not in visible(page)
