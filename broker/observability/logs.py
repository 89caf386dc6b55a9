"""One log format for the whole process: the broker's loggers and the server's (granian's).

``BROKER_LOG_FORMAT=json`` writes one JSON object per line (``time``, ``level``, ``logger``,
``message``, ``pid``; ``request_id`` and ``trace_id`` while a request is being served; the fields a
caller passes as ``extra={"fields": {...}}``; ``exception`` with the traceback). ``text`` is the
human form of the same line. ``auto`` (the default) is JSON with ``BROKER_ENV=production``, text
otherwise.

The request context comes from a :class:`contextvars.ContextVar` the web layer sets per request
(``broker.web.shared.hooks``), so this module needs no Flask and domain code may log freely.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# request_id / trace_id of the request this thread is serving (empty outside requests)
request_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "broker_request_context", default=None
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def resolve_format(log_format: str, production: bool) -> str:
    """``auto`` means JSON in production, text in development."""
    if log_format == "auto":
        return "json" if production else "text"
    return log_format


class JsonFormatter(logging.Formatter):
    """One JSON object per line; never raises on a value it cannot serialize (it uses ``str``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        context = request_context.get()
        if context:
            entry.update(context)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with the request id (and the access-log fields) appended."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = request_context.get()
        fields = getattr(record, "fields", None)
        extra = dict(context or {})
        if isinstance(fields, dict):
            extra.update(fields)
        if extra:
            first, newline, rest = line.partition("\n")
            tail = " ".join(f"{k}={v}" for k, v in extra.items() if v not in (None, ""))
            line = f"{first} [{tail}]{newline}{rest}"
        return line


def make_formatter(log_format: str = "text") -> logging.Formatter:
    """The formatter for ``log_format`` (``json`` or ``text``); the server's logconfig uses it too."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level: str, log_format: str) -> None:
    """Send every logger (root) to stderr in ``log_format``; replaces earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler], force=True)


def server_logconfig(level: str, log_format: str) -> dict[str, Any]:
    """The server's (granian's) logging configuration, applied in the master and in every worker:
    its loggers go through the same handler and formatter as the broker's own (propagating to the
    root), so the whole process writes one format.

    granian's access logger is silenced (and its access log is off): its line holds the raw path
    and query string, and a query may carry a token (``?access_token=``). The broker writes its
    own access line instead (``broker.access``: the URL rule, status, latency, request and trace
    ids).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "broker": {"()": "broker.observability.logs.make_formatter", "log_format": log_format}
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "broker", "stream": "ext://sys.stderr"},
            "null": {"class": "logging.NullHandler"},
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "_granian": {"level": level, "handlers": [], "propagate": True},
            "granian.access": {"level": "CRITICAL", "handlers": ["null"], "propagate": False},
        },
    }
