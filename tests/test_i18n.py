# ruff: noqa: RUF001 - full-width punctuation is correct in Chinese text
"""Every page speaks English and Simplified Chinese from one set of gettext catalogs (Flask-Babel).

The catalogs are checked as data (every message extracted from the code and templates is in them,
every one has a Chinese translation, the committed ``.mo`` files are the compiled ``.po`` files), and
each page family is fetched in Chinese three ways: ``?lang=zh``, ``Accept-Language: zh-CN`` and the
OIDC ``ui_locales`` parameter carried from ``/oauth/authorize`` into the login page.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import broker

TRANSLATIONS = Path(broker.__file__).parent / "translations"
LOCALES = ("en", "zh_Hans")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _catalog(locale: str) -> Any:
    with (TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=locale)


def _key(message: Any) -> tuple[str | None, str]:
    return (message.context, message.id)


def _extracted() -> set[tuple[str | None, str]]:
    """What ``pybabel extract -F babel.cfg`` finds in the code and templates today."""
    method_map = [("broker/**.py", "python"), ("broker/templates/**.html", "jinja2")]
    root = Path(broker.__file__).parent.parent
    found = set()
    for _file, _line, message, _comments, context in extract_from_dir(str(root), method_map):
        msgid = message if isinstance(message, str) else message[0]
        found.add((context, msgid))
    return found


def test_babel_cfg_names_the_same_sources_as_this_test() -> None:
    cfg = (Path(broker.__file__).parent.parent / "babel.cfg").read_text()
    assert "[python: broker/**.py]" in cfg and "[jinja2: broker/templates/**.html]" in cfg


@pytest.mark.parametrize("locale", LOCALES)
def test_the_catalog_holds_exactly_the_messages_in_the_code(locale: str) -> None:
    in_catalog = {_key(m) for m in _catalog(locale) if m.id}
    extracted = _extracted()
    assert extracted - in_catalog == set(), "run pybabel extract/update (see broker/translations/README.md)"
    assert in_catalog - extracted == set(), "the catalog has messages no page uses any more"


def test_every_message_has_a_chinese_translation_with_the_same_placeholders() -> None:
    for message in _catalog("zh_Hans"):
        if not message.id:
            continue
        assert isinstance(message.string, str) and message.string.strip(), message.id
        assert not message.fuzzy, message.id
        assert sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(message.string)), (
            message.id
        )
        assert "%" not in PLACEHOLDER.sub("", message.string), message.id


@pytest.mark.parametrize("locale", LOCALES)
def test_the_compiled_catalog_is_the_po_file(locale: str) -> None:
    compiled = io.BytesIO()
    write_mo(compiled, _catalog(locale))
    committed = (TRANSLATIONS / locale / "LC_MESSAGES" / "messages.mo").read_bytes()
    assert committed == compiled.getvalue(), "run pybabel compile -d broker/translations"


# -- pages in Chinese --------------------------------------------------------------------------------

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
ZH_SWITCH_BACK = 'hreflang="en" lang="en">English</a>'


def _assert_chinese(response: Any, *texts: str) -> str:
    html = response.get_data(as_text=True)
    assert '<html lang="zh-Hans">' in html, html[:200]
    for text in texts:
        assert text in html, text
    assert "语言" in html and ZH_SWITCH_BACK in html  # the switch back to English
    assert re.search(r'<a href="[^"]*lang=zh" hreflang="zh-Hans" lang="zh-Hans" aria-current="true">', html)
    return html


def _both_ways(client: Any, path: str, *texts: str, status: int = 200, **headers: str) -> None:
    """``?lang=zh`` (then remembered), and ``Accept-Language: zh-CN`` on a fresh session."""
    sep = "&" if "?" in path else "?"
    by_param = client.get(f"{path}{sep}lang=zh", headers=headers)
    assert by_param.status_code == status
    _assert_chinese(by_param, *texts)
    remembered = client.get(path, headers=headers)
    _assert_chinese(remembered, *texts)
    back = client.get(f"{path}{sep}lang=en", headers=headers)
    assert '<html lang="en">' in back.get_data(as_text=True)
    with client.session_transaction() as s:
        s.pop("lang", None)
    by_header = client.get(path, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5", **headers})
    assert by_header.status_code == status
    _assert_chinese(by_header, *texts)
    english = client.get(path, headers={"Accept-Language": "en-GB,en;q=0.8", **headers})
    assert '<html lang="en">' in english.get_data(as_text=True)


@pytest.mark.parametrize("tag", ["zh", "zh-CN", "zh-Hans", "zh-Hans-CN", "zh_Hans"])
def test_chinese_tags_map_to_zh_hans(tag: str) -> None:
    from broker.web.interactions.i18n import locale_for

    assert locale_for(tag) == "zh_Hans"
    assert locale_for("en-GB") == "en" and locale_for("fr") is None and locale_for("") is None


def test_sign_in_and_home_pages_in_chinese(client: Any) -> None:
    _both_ways(client, "/login", "<h1>登录</h1>", "用户名", "密码")
    _both_ways(client, "/", "你尚未登录。", ">登录</a>")


def test_error_pages_in_chinese(client: Any) -> None:
    html = client.get("/no-such-page?lang=zh", headers={"Accept": "text/html"})
    assert html.status_code == 404
    _assert_chinese(
        html, "出了点问题", "此页面或内容不存在。", "错误代码：<code>not_found</code>（HTTP 404）"
    )
    _both_ways(client, "/no-such-page", "出了点问题", status=404, Accept="text/html")


def test_the_switch_keeps_the_other_query_parameters(client: Any) -> None:
    html = client.get("/login?next=%2Fprivacy%3Fx%3D1&lang=zh").get_data(as_text=True)
    assert 'href="/login?next=%2Fprivacy%3Fx%3D1&amp;lang=en" hreflang="en"' in html


def _consent_world(store: Any, settings: Any) -> dict[str, str]:
    from broker.apps import registry as apps_svc
    from broker.core import catalog as catalog_mod
    from broker.directory import service as directory
    from tests.support.apps import mini_payload

    dev = directory.create_user(
        store, {"username": "devon", "password": "devon-password", "nickname": "Devon"}
    )
    directory.create_user(store, {"username": "alice", "password": "alice-password", "nickname": "Alice"})
    catalog = catalog_mod.load(settings.scopes_dir)
    record, _, _ = apps_svc.register_app(store, settings, catalog, mini_payload(dev["id"]))
    return {"client_id": record["client_id"]}


def _authorize_url(client_id: str, **extra: str) -> str:
    import base64
    import hashlib
    from urllib.parse import urlencode

    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 50).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "http://127.0.0.1:8765/callback",
        "scope": "openid profile",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"/oauth/authorize?{urlencode(query)}"


def test_ui_locales_on_authorize_carries_into_login_and_consent(
    client: Any, store: Any, settings: Any
) -> None:
    world = _consent_world(store, settings)
    english_browser = {"Accept-Language": "en-US,en;q=0.9"}
    start = client.get(
        _authorize_url(world["client_id"], ui_locales="fr-CA zh-CN en"), headers=english_browser
    )
    assert start.status_code == 302 and start.headers["Location"].startswith("/login?")
    login = client.get(start.headers["Location"], headers=english_browser)
    html = _assert_chinese(login, "<h1>登录</h1>", "用户名")
    token = CSRF_RE.search(html)
    next_path = re.search(r'name="next" type="hidden" value="([^"]+)"', html)
    assert token and next_path
    signed_in = client.post(
        "/login",
        data={
            "csrf_token": token.group(1),
            "username": "alice",
            "password": "alice-password",
            "next": next_path.group(1).replace("&amp;", "&"),
        },
        headers=english_browser,
    )
    assert signed_in.status_code == 303
    consent = client.get(signed_in.headers["Location"], headers=english_browser, follow_redirects=True)
    assert "/consent/" in consent.request.path
    _assert_chinese(consent, "Notes 请求访问你的信息", "你的昵称", "允许")
    # The person's own choice wins over the client's hint.
    switched = client.get(f"{consent.request.path}?lang=en", headers=english_browser)
    assert "Notes wants to access your information" in switched.get_data(as_text=True)
    # A later authorization request without ui_locales drops the hint: the browser's language applies.
    with client.session_transaction() as s:
        s.pop("lang", None)
    later = client.get(_authorize_url(world["client_id"]), headers=english_browser, follow_redirects=True)
    assert '<html lang="en">' in later.get_data(as_text=True)


def test_switching_away_from_the_ui_locales_hint_sticks_through_sign_in(
    client: Any, store: Any, settings: Any
) -> None:
    world = _consent_world(store, settings)
    start = client.get(_authorize_url(world["client_id"], ui_locales="zh-CN"))
    chinese = client.get(start.headers["Location"])
    _assert_chinese(chinese, "<h1>登录</h1>")
    switch = re.search(r'<a href="([^"]+)" hreflang="en"', chinese.get_data(as_text=True))
    assert switch and "next=" in switch.group(1)
    english = client.get(switch.group(1).replace("&amp;", "&"))
    html = english.get_data(as_text=True)
    assert '<html lang="en">' in html and "<h1>Sign in</h1>" in html
    token = CSRF_RE.search(html)
    next_path = re.search(r'name="next" type="hidden" value="([^"]+)"', html)
    assert token and next_path and "ui_locales" in next_path.group(1)
    wrong = client.post(
        "/login",
        data={
            "csrf_token": token.group(1),
            "username": "alice",
            "password": "nope",
            "next": next_path.group(1).replace("&amp;", "&"),
        },
    )
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.get_data(as_text=True)
    assert 'href="/login?next=%2Foauth%2Fauthorize%3F' in wrong.get_data(
        as_text=True
    )  # the switch keeps next
    signed_in = client.post(
        "/login",
        data={
            "csrf_token": token.group(1),
            "username": "alice",
            "password": "alice-password",
            "next": next_path.group(1).replace("&amp;", "&"),
        },
    )
    consent = client.get(signed_in.headers["Location"], follow_redirects=True)
    assert "/consent/" in consent.request.path
    assert "Notes wants to access your information" in consent.get_data(as_text=True)


def test_ui_locales_in_english_beats_a_chinese_browser(client: Any, store: Any, settings: Any) -> None:
    world = _consent_world(store, settings)
    chinese_browser = {"Accept-Language": "zh-CN,zh;q=0.9"}
    login = client.get(
        _authorize_url(world["client_id"], ui_locales="en"), headers=chinese_browser, follow_redirects=True
    )
    assert '<html lang="en">' in login.get_data(as_text=True) and "<h1>Sign in</h1>" in login.get_data(
        as_text=True
    )


def test_privacy_center_in_chinese(client: Any, store: Any, settings: Any) -> None:
    from broker.directory import service as directory
    from tests.support.signin import session_sign_in as sign_in

    uid = directory.create_user(
        store, {"username": "alice", "password": "alice-password", "nickname": "Alice"}
    )
    sign_in(client, uid["id"])
    _both_ways(client, "/privacy", "你的隐私中心", "你已授权的应用")
    _both_ways(client, "/privacy/disclosures", "披露记录")
    _both_ways(client, "/privacy/delete", "删除你的账号")


@pytest.fixture
def org_world(store: Any, settings: Any) -> dict[str, str]:
    """An owner who is also a developer, an org with an installed App Center app, a spare app."""
    import json

    from broker.apps import registry as apps_svc
    from broker.consent import installations as inst_svc
    from broker.core import catalog as catalog_mod
    from broker.storage import keys
    from tests.support.apps import org_payload
    from tests.support.factories import make_org, make_user

    owner = make_user(store, username="olivia", nickname="Olivia")
    oid = make_org(store, [owner], name="Acme")
    store.redis.hset(keys.org_roles(oid), owner, json.dumps({"role": "owner", "permissions": []}))
    catalog = catalog_mod.load(settings.scopes_dir)
    roster, _, _ = apps_svc.register_app(store, settings, catalog, org_payload(owner))
    spare, _, _ = apps_svc.register_app(store, settings, catalog, org_payload(owner, name="Payroll"))
    inst_svc.install(store, roster["client_id"], oid, ["org.members.read"], installed_by=owner)
    return {"owner": owner, "oid": oid, "roster": roster["client_id"], "spare": spare["client_id"]}


def test_consoles_in_chinese(client: Any, org_world: dict[str, str]) -> None:
    from tests.support.signin import session_sign_in as sign_in

    sign_in(client, org_world["owner"])
    org, roster, spare = f"/admin/orgs/{org_world['oid']}", org_world["roster"], org_world["spare"]
    pages = {
        "/console": ["<h1>控制台</h1>", "你的组织", "开发者控制台"],
        f"{org}/": ["已添加到组织的应用", "已启用", "应用中心"],
        f"{org}/app-center": ["<h1>应用中心</h1>", "已添加到 Acme。"],
        f"{org}/apps/{roster}": ["Acme 中的 Roster", "状态：", "从组织中移除…"],
        f"{org}/apps/{spare}/install": ["将 Payroll 添加到 Acme", "此权限范围下它获得的成员信息："],
        f"{org}/apps/{roster}/disable": ["停用 Roster？", "影响"],
        f"{org}/requests": ["<h1>成员申请</h1>", "暂无申请。"],
        f"{org}/requests/mine": ["我在 Acme 的应用申请", "你还没有申请任何应用。"],
        f"{org}/admins": ["Acme 中的角色", "任命子管理员或更改权限"],
        f"{org}/audit": ["Acme 的审计记录"],
        f"{org}/disband": ["解散 Acme？", "此操作无法撤销。"],
        "/developer/": ["<h1>你的应用</h1>", "注册应用", "应用中心应用"],
        "/developer/apps/new": ["<h1>注册应用</h1>", "小程序（由个人为自己添加）", "适用于应用中心应用"],
        f"/developer/apps/{roster}": ["详细信息", "轮换客户端密钥", "事件投递"],
        f"/developer/apps/{roster}/edit": ["编辑 Roster", "注册后不可更改"],
        f"/developer/apps/{roster}/delete": ["删除 Roster？", "删除此应用"],
    }
    for path, texts in pages.items():
        response = client.get(path, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        assert response.status_code == 200, path
        _assert_chinese(response, *texts)
    # ?lang= works on a console page too, and is remembered over the header.
    _both_ways(client, "/console", "<h1>控制台</h1>")
    english = client.get(f"{org}/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="en">' in english and "Apps added to the organization" in english


def test_discovery_advertises_the_ui_locales(client: Any) -> None:
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["ui_locales_supported"] == ["en", "zh-Hans"]


def test_the_api_reference_page_speaks_chinese_too(client: Any) -> None:
    zh = client.get("/docs?lang=zh").get_data(as_text=True)
    assert '<html lang="zh-Hans">' in zh
    assert "API 参考" in zh and "数据结构" in zh and "以下说明来自 OpenAPI 文档" in zh
    assert 'hreflang="en"' in zh  # the switch back
    en = client.get("/docs?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in en and "API reference" in en and "API 参考" not in en
