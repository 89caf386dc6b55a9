"""What the admin's and the developer's history pages share: filters read from a GET form, whole
UTC days (the zone every console table shows), the paging cursor, and problems to show on the page."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import request, url_for

from broker.errors import ValidationFailed

PAGE_SIZE = 50


def day_bounds(args: dict[str, str]) -> tuple[float | None, float | None, dict[str, list[str]]]:
    """``since`` and ``until`` (``YYYY-MM-DD``, as a date input sends them) as unix seconds of whole
    UTC days, ``until`` including its day; with what is wrong with them."""
    problems: dict[str, list[str]] = {}
    found: dict[str, float | None] = {"since": None, "until": None}
    for name in ("since", "until"):
        raw = args.get(name, "")
        if not raw:
            continue
        try:
            day = date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            day = None
        if day is None:
            problems[name] = ["expected a date such as 2026-11-29"]
            continue
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        found[name] = (
            (start + timedelta(days=1)).timestamp() - 0.001 if name == "until" else start.timestamp()
        )
    since, until = found["since"], found["until"]
    if since is not None and until is not None and until < since:
        problems["until"] = ["must not be before since"]
    return since, until, problems


def filter_args(names: tuple[str, ...]) -> dict[str, str]:
    """The filters given (trimmed, bounded), for the form and for every pager link."""
    found = {n: request.args.get(n, "").strip()[:100] for n in names}
    return {n: v for n, v in found.items() if v}


def cursor() -> str | None:
    return request.args.get("cursor", "").strip()[:200] or None


def problems(exc: ValidationFailed) -> dict[str, list[str]]:
    """A refusal as the page shows it: per parameter, or one general line."""
    return dict(exc.fields or {}) or {"_": [exc.detail]}


def page_url(endpoint: str, args: dict[str, str], page_cursor: str | None = None, **path: str) -> str:
    """The page's own URL with the same filters (and a cursor: the next page)."""
    values: dict[str, Any] = {**args, **path}
    if page_cursor:
        values["cursor"] = page_cursor
    return url_for(endpoint, **values)
