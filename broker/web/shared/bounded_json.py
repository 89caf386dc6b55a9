"""Bounded JSON: size and nesting limits checked before any JSON body is parsed.

Python's ``json`` parser recurses once per nested array or object, so a body of
``"[" * 1000 + "]" * 1000`` raises ``RecursionError`` deep inside it (a traceback and a 500), and
a large body costs memory in proportion. Both limits apply before parsing, to every route:

* **Size**: ``MAX_CONTENT_LENGTH`` (``BROKER_MAX_BODY_BYTES``) makes Werkzeug refuse a larger body
  while reading it (with or without a ``Content-Length``): 413 "The request body is larger than N
  bytes" from the one error renderer.
* **Depth**: a scanner counts the brackets outside strings (linear, no recursion) before the
  parser sees the body: 400 "JSON nested deeper than N". :class:`BoundedRequest` (the app's request
  class) does it in ``request.get_json``, which every JSON route parses its body with, and turns any
  other parse failure into a 400 naming the problem. The NDJSON import checks each line with
  :func:`check_lines` (400 in the import's ``{"<line>": {"_line": [...]}}`` form).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, cast

from flask import Flask, current_app
from flask.wrappers import Request
from werkzeug.exceptions import RequestEntityTooLarge

from broker.errors import ValidationFailed

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


def depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in ``data`` (brackets inside strings do not count;
    an unterminated string ends the scan, the parser will name that problem)."""
    outside = _STRING.sub(b"", data)
    quote = outside.find(b'"')
    if quote >= 0:
        outside = outside[:quote]
    brackets = _NOT_BRACKET.sub(b"", outside)
    if not brackets:
        return 0
    steps = (1 if b in b"[{" else -1 for b in brackets)
    return max(0, max(accumulate(steps)))


def too_deep(limit: int) -> str:
    return f"JSON nested deeper than {limit}"


def limit() -> int:
    return int(current_app.extensions["broker.settings"].max_json_depth)


def check(data: bytes, max_depth: int) -> None:
    """400 when ``data`` nests deeper than ``max_depth``."""
    if depth(data) > max_depth:
        raise ValidationFailed(too_deep(max_depth))


def check_lines(data: bytes, max_depth: int) -> None:
    """NDJSON: 400 naming each line that nests deeper than ``max_depth`` (nothing is imported)."""
    deep = {
        str(number): {"_line": [too_deep(max_depth)]}
        for number, line in enumerate(data.splitlines(), start=1)
        if depth(line) > max_depth
    }
    if deep:
        raise ValidationFailed(f"{len(deep)} line(s) are invalid; nothing was imported", fields=deep)


class BoundedRequest(Request):
    """``get_json`` with the depth check first and a 400 naming the problem for a body that does not
    parse (also for ``silent=True``, which would otherwise hide it behind a vaguer message)."""

    _depth_checked = False

    def get_data(  # type: ignore[override]
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> bytes | str:
        """Werkzeug stops reading a body without ``Content-Length`` (chunked) at
        ``MAX_CONTENT_LENGTH`` and hands over what it read: that cut-off body is refused with 413
        here rather than parsed as if it were whole."""
        data = cast(bytes, super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data))
        most = self.max_content_length
        if most is not None and self.content_length is None and len(data) >= most:
            raise RequestEntityTooLarge()
        return data.decode(errors="replace") if as_text else data

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not (force or self.is_json):
            return super().get_json(force=force, silent=silent, cache=cache)
        data = cast(bytes, self.get_data(cache=True))  # 413 when larger than MAX_CONTENT_LENGTH
        if not self._depth_checked:
            check(data, limit())
            self._depth_checked = True
        if not data.strip():
            return super().get_json(force=force, silent=silent, cache=cache)
        try:
            # Not silent: a body that does not parse is a 400 naming why (on_json_loading_failed).
            return super().get_json(force=force, silent=False, cache=cache)
        except RecursionError:  # the scan above makes this unreachable; kept as the last guard
            raise ValidationFailed(too_deep(limit())) from None

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            return super().on_json_loading_failed(e)
        raise ValidationFailed(f"the body is not valid JSON: {_describe(e)}")


def _describe(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)


def install(app: Flask) -> None:
    """Bounded JSON wherever a route parses a body (``request.get_json``)."""
    app.request_class = BoundedRequest
