"""Which language a page speaks: Flask-Babel with the gettext catalogs in ``broker/translations``.

Every page takes its text from ``_()``/``gettext``; the catalogs hold English (the msgids) and
Simplified Chinese (``zh_Hans``). The locale is chosen in this order:

1. an explicit ``?lang=en|zh`` on this request (remembered in the session; it replaces a
   ``ui_locales`` hint carried from the authorization request, and that hint is not applied again);
2. the OIDC ``ui_locales`` parameter (OpenID Connect Core 3.1.2.1) on ``/oauth/authorize``, or in the
   ``next`` target of the login page; it is carried in the session into the login and consent pages;
3. the remembered ``?lang=`` choice;
4. ``Accept-Language``;
5. English.

``zh``, ``zh-CN``, ``zh-Hans`` (any ``zh`` tag) map to ``zh_Hans``. Scope-catalog texts (field and
scope descriptions) are keyed ``en``/``zh``: ``language()`` gives that key for the chosen locale.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Flask, has_request_context, request, session
from flask_babel import get_locale

from broker.extensions import babel

LOCALES = ("en", "zh_Hans")
# The ?lang= value and the scope catalog's language key of each locale.
SHORT = {"en": "en", "zh_Hans": "zh"}
# The BCP 47 tag for <html lang> and hreflang.
HTML_LANG = {"en": "en", "zh_Hans": "zh-Hans"}
# How each locale names itself in the language switch.
NATIVE_NAME = {"en": "English", "zh_Hans": "简体中文"}
# The session keys of the page language: kept when sign-in starts a fresh session.
CHOSEN, HINTED, DECLINED = "lang", "ui_locale", "ui_locale_declined"
SESSION_KEYS = (CHOSEN, HINTED, DECLINED)


def locale_for(tag: str | None) -> str | None:
    """The supported locale for a BCP 47 tag (``en-GB``, ``zh-CN``, ``zh-Hans``, ``zh``...), or None."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    return {"en": "en", "zh": "zh_Hans"}.get(primary)


def _ui_locales() -> str | None:
    """The first supported tag of ``ui_locales`` on this request or in the login page's ``next``,
    unless the person switched away from that very hint (then their choice stands)."""
    values = [request.args.get("ui_locales")]
    target = request.args.get("next") or (request.form.get("next") if request.method == "POST" else None)
    if target:
        values.extend(parse_qs(urlsplit(target).query).get("ui_locales", []))
    for value in values:
        for tag in (value or "").split():
            found = locale_for(tag)
            if found:
                return None if found == session.get(DECLINED) else found
    return None


def select_locale() -> str:
    """Flask-Babel's locale selector (see the module docstring for the order)."""
    if not has_request_context():
        return "en"
    chosen = request.args.get("lang")
    if chosen in SHORT.values() or chosen in LOCALES:
        locale = locale_for(chosen) or "en"
        hint = _ui_locales() or session.get(HINTED)
        if hint in LOCALES and hint != locale:
            session[DECLINED] = hint
        session[CHOSEN] = SHORT[locale]
        session.pop(HINTED, None)
        return locale
    hinted = _ui_locales()
    if hinted:
        session[HINTED] = hinted
        return hinted
    carried = session.get(HINTED)
    if carried in LOCALES:
        return str(carried)
    remembered = locale_for(session.get(CHOSEN))
    if remembered:
        return remembered
    for tag, _quality in request.accept_languages:
        found = locale_for(tag)
        if found:
            return found
    return "en"


def current_locale() -> str:
    found = str(get_locale() or "en")
    return found if found in LOCALES else "en"


def language() -> str:
    """The scope catalog's language key (``en`` or ``zh``) for this request's locale."""
    return SHORT[current_locale()]


def switch_url(locale: str) -> str:
    """This page's URL with ``?lang=`` set to ``locale`` (other query parameters kept; on a page answering
    a form, such as a failed sign-in, the form's ``next`` too, so the switch does not lose the way back)."""
    args: list[tuple[str, Any]] = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
    if request.method == "POST" and "next" not in request.args and request.form.get("next"):
        args.append(("next", request.form["next"]))
    args.append(("lang", SHORT[locale]))
    return f"{request.path}?{urlencode(args)}"


def _template_context() -> dict[str, Any]:
    if not has_request_context():
        return {}
    locale = current_locale()
    return {
        "html_lang": HTML_LANG[locale],
        "ui": SHORT[locale],
        "languages": [
            {
                "href": switch_url(code),
                "hreflang": HTML_LANG[code],
                "name": NATIVE_NAME[code],
                "current": code == locale,
            }
            for code in LOCALES
        ],
    }


def remember_ui_locales() -> None:
    """On ``/oauth/authorize``: carry the client's ``ui_locales`` hint (or its absence) in the session,
    so the login and consent pages the person is sent to speak that language."""
    if request.endpoint != "oauth.authorize" or "lang" in request.args:
        return
    hinted = _ui_locales()
    if hinted:
        session[HINTED] = hinted
    elif HINTED in session:
        del session[HINTED]


def init_app(app: Flask) -> None:
    """Bind Flask-Babel (catalogs in ``broker/translations``) and give every template its language."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    babel.init_app(app, locale_selector=select_locale)
    app.context_processor(_template_context)
    app.before_request(remember_ui_locales)
