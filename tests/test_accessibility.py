"""Every page people use is server-rendered HTML that works without JavaScript and can be used with a
screen reader or a keyboard: a language, a title and one h1, every form control labelled, every
image with alternative text, every button named, data tables with header cells, no scripts.

The pages are fetched exactly as a browser would get them (signed in, with real state behind them);
the checks read the HTML that was served.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.core import catalog as catalog_mod
from broker.directory import departments
from broker.directory.service import set_role
from tests.support.apps import mini_payload, org_payload
from tests.support.factories import make_org, make_user, raw_grant
from tests.support.privacy import index_grant
from tests.support.signin import session_sign_in

CONTROLS = {"input", "select", "textarea"}
UNLABELLED_INPUTS = {"hidden", "submit", "button", "reset", "image"}


@dataclass
class Page(HTMLParser):
    """What the checks need from one HTML document."""

    lang: str | None = None
    title: str = ""
    h1: int = 0
    scripts: int = 0
    label_for: set[str] = field(default_factory=set)
    controls: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, str | None]] = field(default_factory=list)
    buttons: list[str] = field(default_factory=list)
    tables: list[int] = field(default_factory=list)  # header cells per table
    _labels_open: int = 0
    _in_title: bool = False
    _button: list[str] | None = None

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "title":
            self._in_title = True
        elif tag == "h1":
            self.h1 += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "label":
            self._labels_open += 1
            if a.get("for"):
                self.label_for.add(str(a["for"]))
        elif tag in CONTROLS:
            if tag == "input" and (a.get("type") or "text") in UNLABELLED_INPUTS:
                if a.get("type") == "submit" and not a.get("value"):
                    self.buttons.append("")
                return
            self.controls.append({**a, "tag": tag, "wrapped": self._labels_open > 0})
        elif tag == "img":
            self.images.append(a)
        elif tag == "button":
            self._button = [a.get("aria-label") or ""]
        elif tag == "table":
            self.tables.append(0)
        elif tag == "th" and self.tables:
            self.tables[-1] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._labels_open = max(0, self._labels_open - 1)
        elif tag == "title":
            self._in_title = False
        elif tag == "button" and self._button is not None:
            self.buttons.append("".join(self._button).strip())
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._button is not None:
            self._button.append(data)


def problems(html: str) -> list[str]:
    page = Page()
    page.feed(html)
    found = []
    if not page.lang:
        found.append("<html> has no lang")
    if not page.title.strip():
        found.append("no <title>")
    if page.h1 != 1:
        found.append(f"{page.h1} <h1> elements (want exactly one)")
    if page.scripts:
        found.append("a <script>: pages must work without JavaScript")
    for control in page.controls:
        named = (
            control["wrapped"]
            or control.get("id") in page.label_for
            or control.get("aria-label")
            or control.get("aria-labelledby")
        )
        if not named:
            found.append(f"unlabelled <{control['tag']} name={control.get('name')!r}>")
    for image in page.images:
        if image.get("alt") is None:
            found.append(f"<img src={image.get('src')!r}> has no alt")
    for text in page.buttons:
        if not text:
            found.append("a button without a name")
    for headers in page.tables:
        if headers == 0:
            found.append("a table without header cells")
    return found


def test_the_checker_finds_what_it_looks_for() -> None:
    """The checks can fail: a page with each fault is reported for each one."""
    bad = (
        "<html><title></title><h1>a</h1><h1>b</h1><script>x()</script>"
        "<form><input name=q><select name=s></select><button></button></form>"
        "<img src=x.png><table><tr><td>1</td></tr></table></html>"
    )
    assert sorted(problems(bad)) == sorted(
        [
            "<html> has no lang",
            "no <title>",
            "2 <h1> elements (want exactly one)",
            "a <script>: pages must work without JavaScript",
            "unlabelled <input name='q'>",
            "unlabelled <select name='s'>",
            "a button without a name",
            "<img src='x.png'> has no alt",
            "a table without header cells",
        ]
    )
    good = (
        '<html lang="en"><title>t</title><h1>a</h1><form><label for="q">Q</label><input id="q" name="q">'
        '<label>S <select name="s"></select></label><button>Go</button></form>'
        '<img src="x.png" alt=""><table><tr><th>h</th></tr></table></html>'
    )
    assert problems(good) == []


@pytest.fixture
def world(app: Any, store: Any, settings: Any) -> dict[str, str]:
    """An owner who is also a developer, an org with an installed app, a person's grant."""
    app.config["WTF_CSRF_ENABLED"] = True
    owner = make_user(store, username="olivia", nickname="Olivia")
    member = make_user(store, username="pat", nickname="Pat")
    oid = make_org(store, [owner, member], name="Acme")
    set_role(store, oid, owner, "owner")
    catalog = catalog_mod.load(settings.scopes_dir)
    roster, _, _ = apps_svc.register_app(store, settings, catalog, org_payload(owner))
    spare, _, _ = apps_svc.register_app(store, settings, catalog, org_payload(owner, name="Payroll"))
    notes, _, _ = apps_svc.register_app(store, settings, catalog, mini_payload(owner))
    inst_svc.install(store, roster["client_id"], oid, ["org.members.read"], installed_by=owner)
    raw_grant(store, notes["client_id"], owner, "openid profile", "user_id nickname avatar")
    index_grant(store, notes["client_id"], owner)
    dep = departments.create(store, oid, "Engineering")["id"]
    departments.create(store, oid, "Web", dep)
    departments.assign(store, oid, member, [dep])
    return {
        "dep": dep,
        "owner": owner,
        "oid": oid,
        "roster": roster["client_id"],
        "spare": spare["client_id"],
        "notes": notes["client_id"],
    }


def pages(w: dict[str, str]) -> list[str]:
    org, roster, notes = f"/admin/orgs/{w['oid']}", w["roster"], w["notes"]
    return [
        "/",
        "/console",
        "/developer/",
        "/developer/apps/new",
        f"/developer/apps/{roster}",
        f"/developer/apps/{roster}/edit",
        f"/developer/apps/{roster}/delete",
        f"/developer/apps/{roster}/disclosures",
        f"{org}/",
        f"{org}/app-center",
        f"{org}/apps/{roster}",
        f"{org}/apps/{w['spare']}/install",
        f"{org}/apps/{roster}/disable",
        f"{org}/apps/{roster}/remove",
        f"{org}/requests",
        f"{org}/requests/mine",
        f"{org}/admins",
        f"{org}/audit",
        f"{org}/disclosures",
        f"{org}/departments",
        f"{org}/departments/{w['dep']}",
        f"{org}/disband",
        "/privacy",
        f"/privacy/apps/{notes}/revoke",
        f"/privacy/apps/{notes}/scopes/profile/revoke",
        "/privacy/disclosures",
        "/privacy/receipts",
        "/privacy/export",
        "/privacy/delete",
        "/privacy/sessions",
        "/privacy/password",
        "/docs",
    ]


def test_every_console_and_privacy_page_is_accessible(client: Any, world: dict[str, str]) -> None:
    session_sign_in(client, world["owner"])
    report = {}
    for path in pages(world):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert response.mimetype == "text/html", path
        found = problems(response.get_data(as_text=True))
        if found:
            report[path] = found
    assert report == {}


def test_sign_in_consent_and_error_pages_are_accessible(client: Any, world: dict[str, str]) -> None:
    login = client.get("/login")
    assert login.status_code == 200 and problems(login.get_data(as_text=True)) == []
    missing = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert missing.status_code == 404 and problems(missing.get_data(as_text=True)) == []

    session_sign_in(client, world["owner"])
    client.application.config["WTF_CSRF_ENABLED"] = True
    other = make_user(client.application.extensions["broker.store"], username="sam", nickname="Sam")
    session_sign_in(client, other)  # no grant yet: the consent page is shown
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": world["notes"],
            "redirect_uri": "http://127.0.0.1:8765/callback",
            "scope": "openid profile",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    response = client.get(f"/oauth/authorize?{query}", follow_redirects=True)
    assert response.status_code == 200 and "/consent/" in response.request.path
    assert problems(response.get_data(as_text=True)) == []
    for lang in ("zh", "en"):
        page = client.get(f"{response.request.path}?lang={lang}")
        assert page.status_code == 200 and problems(page.get_data(as_text=True)) == []
