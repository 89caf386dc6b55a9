"""Read HTML forms the way a browser submits them, for end-to-end tests over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin


@dataclass
class Form:
    action: str
    method: str
    inputs: list[tuple[str, str, str, bool, bool]] = field(
        default_factory=list
    )  # name, type, value, checked, disabled
    buttons: list[tuple[str, str]] = field(default_factory=list)  # name, value

    def values(
        self,
        *,
        press: str | None = None,
        untick: tuple[str, ...] = (),
        tick: tuple[str, ...] = (),
        **overrides: str,
    ) -> list[tuple[str, str]]:
        """The pairs a browser would send, pressing the submit button whose value is ``press``."""
        out: list[tuple[str, str]] = []
        for name, kind, value, checked, disabled in self.inputs:
            if disabled or not name:
                continue
            if kind in {"checkbox", "radio"}:
                on = (checked or value in tick or name in tick) and value not in untick and name not in untick
                if on:
                    out.append((name, value or "on"))
            elif name in overrides:
                out.append((name, overrides[name]))
            else:
                out.append((name, value))
        for name, value in overrides.items():
            if not any(n == name for n, *_ in self.inputs):
                out.append((name, value))
        if press is not None:
            matches = [(n, v) for n, v in self.buttons if v == press or n == press]
            if not matches:
                raise AssertionError(f"no button {press!r} in form; buttons: {self.buttons}")
            if matches[0][0]:
                out.append(matches[0])
        return out


class _Parser(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._current = Form(
                action=urljoin(self.base, a.get("action") or self.base),
                method=(a.get("method") or "get").lower(),
            )
            self.forms.append(self._current)
        elif self._current is not None and tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "submit":
                self._current.buttons.append((a.get("name", ""), a.get("value", "")))
            else:
                self._current.inputs.append(
                    (a.get("name", ""), kind, a.get("value", ""), "checked" in a, "disabled" in a)
                )
        elif self._current is not None and tag == "button":
            if a.get("type", "submit").lower() == "submit":
                self._current.buttons.append((a.get("name", ""), a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms(html: str, base: str) -> list[Form]:
    parser = _Parser(base)
    parser.feed(html)
    return parser.forms


def form_with(html: str, base: str, *, field_name: str | None = None, action_part: str | None = None) -> Form:
    for candidate in forms(html, base):
        if field_name and any(n == field_name for n, *_ in candidate.inputs):
            return candidate
        if action_part and action_part in candidate.action:
            return candidate
    raise AssertionError(
        f"no form with field {field_name!r} / action {action_part!r} in page:\n{html[:2000]}"
    )
