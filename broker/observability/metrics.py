"""Prometheus metrics: what happened, counted where it happens, one line at each place.

Domain code calls the functions below (``disclosed``, ``gate_refused``, ``token_issued``,
``webhook_outcome``, ``sequencer_backlog``, ``redis_error``); the web layer calls ``http_request``
and serves :func:`render` at ``/metrics``. This module imports neither Flask nor any broker package.

**Several processes.** ``broker serve`` runs granian with N workers forked from the master
that built the app. :func:`enable_multiprocess` (called by the master before it forks) switches
prometheus-client to its multi-process mode: every process writes its values to memory-mapped files
in one directory of the run (``<data dir>/metrics/<master pid>``), and :func:`render` sums them over
all processes, dead ones included for counters (a worker restart does not reset a total).
``mark_process_dead`` (when a server worker exits) drops a dead worker's live gauges.

Metrics are built on first use, after the mode is chosen: prometheus-client picks the storage of a
value when the metric is constructed.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
    values,
)
from prometheus_client import multiprocess as _mp
from prometheus_client.exposition import generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# webhook outcomes that are deliveries (``idle``, ``busy`` and ``waiting`` are not)
WEBHOOK_OUTCOMES = frozenset({"delivered", "retry", "dead", "undeliverable", "error"})
disable_created_metrics()  # no ``*_created`` series: a restart shows in the counters' resets anyway

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        self.http = Histogram(
            "broker_http_request_duration_seconds",
            "HTTP requests by route (the URL rule, never the raw path), method and status, with latency",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.disclosures = Counter(
            "broker_disclosures",
            "Disclosure records committed by the gate, by token kind (grant: a person's app, "
            "installation: an organization's app, id_token: the sub of an id token)",
            ["kind"],
            registry=r,
        )
        self.gate_refusals = Counter(
            "broker_gate_refusals",
            "Data requests the gate refused before anything was disclosed, by reason",
            ["reason"],
            registry=r,
        )
        self.tokens = Counter(
            "broker_token_issuance",
            "Token responses by grant type and outcome (issued, or why the code/refresh token was refused)",
            ["grant", "outcome"],
            registry=r,
        )
        self.webhooks = Counter(
            "broker_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retry, dead, undeliverable, error)",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "broker_webhook_dead_letters", "Webhook events moved to the dead-letter list", registry=r
        )
        self.backlog_records = Gauge(
            "broker_ledger_pending_records",
            "Disclosure records waiting in the journals for the sequencer",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.backlog_age = Gauge(
            "broker_ledger_oldest_pending_seconds",
            "Age of the oldest record waiting for the sequencer (0 when none waits)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.redis_errors = Counter(
            "broker_redis_errors",
            "Redis calls that failed: connection, timeout, or refused by the open circuit breaker",
            ["kind"],
            registry=r,
        )


_lock = threading.Lock()
_metrics: _Metrics | None = None
_registry: CollectorRegistry | None = None


def _m() -> _Metrics:
    global _metrics, _registry
    metrics = _metrics
    if metrics is None:
        with _lock:
            if _metrics is None:
                # multi-process: values live in files, collected at render time, no registry needed
                _registry = None if multiprocess_dir() else CollectorRegistry()
                _metrics = _Metrics(_registry)
            metrics = _metrics
    return metrics


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def enable_multiprocess(base: Path) -> Path:
    """Collect the metrics of every process forked from this one in a directory of this run,
    ``base/<pid>``, and return it. Directories of earlier runs whose process is gone are deleted
    (a server sharing the data directory with an external Redis keeps its own).

    Call before forking and before any metric of this process is used for real: counts made
    earlier in this process are dropped.
    """
    global _metrics, _registry
    base.mkdir(parents=True, mode=0o700, exist_ok=True)
    for old in base.iterdir():
        if old.is_dir() and (
            not old.name.isdigit() or int(old.name) == os.getpid() or not _alive(int(old.name))
        ):
            shutil.rmtree(old, ignore_errors=True)
    directory = base / str(os.getpid())
    directory.mkdir(mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)
    with _lock:
        values.ValueClass = values.MultiProcessValue()
        _metrics, _registry = None, None
    return directory


def disable_multiprocess() -> None:
    """The run is over (the server stopped): delete its directory. Only the process that made it
    does (a forked worker that unwinds the master's stack on its way out does not)."""
    directory = multiprocess_dir()
    if directory and Path(directory).name == str(os.getpid()):
        shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process holds that pid: not ours to delete
        return True
    return True


def mark_process_dead(pid: int) -> None:
    """A worker exited: its live gauges no longer count (its counters still do)."""
    if multiprocess_dir():
        _mp.mark_process_dead(pid)


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads every process's values at each collection (multi-process mode)."""
    registry = CollectorRegistry()
    _mp.MultiProcessCollector(registry)
    return registry


def serve(port: int, host: str) -> None:
    """Serve ``/metrics`` (no authentication) on ``host:port`` from a daemon thread of this process:
    every process's metrics in multi-process mode (the server's master), else this process's own
    (``broker worker``). OSError if the port cannot be bound."""
    _m()
    registry = multiprocess_registry() if multiprocess_dir() else _registry
    assert registry is not None
    start_http_server(port, host, registry=registry)


def render() -> tuple[bytes, str]:
    """The exposition text of every process (``/metrics`` body) and its content type."""
    metrics = _m()  # every metric exists (at zero) even before its first event
    del metrics
    if multiprocess_dir():
        return generate_latest(multiprocess_registry()), CONTENT_TYPE_LATEST
    assert _registry is not None
    return generate_latest(_registry), CONTENT_TYPE_LATEST


# -- the instrumentation points ------------------------------------------------------------------


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    _m().http.labels(route, method if method in HTTP_METHODS else "other", str(status)).observe(seconds)


def disclosed(kind: str, records: int = 1) -> None:
    _m().disclosures.labels(kind).inc(records)


def gate_checked(status: str) -> None:
    """The gate script's answer: ``ok``, or the reason of a refusal (counted)."""
    if status != "ok":
        _m().gate_refusals.labels(status).inc()


_GRANTS = {"code": "authorization_code", "refresh": "refresh_token", "none": "client_credentials"}


def token_issued(consume: str, outcome: str = "issued") -> None:
    """``consume`` is what the token script consumed: a code, a refresh token, or nothing."""
    _m().tokens.labels(_GRANTS.get(consume, consume), outcome).inc()


def webhook_outcome(outcome: str) -> str:
    """Count one delivery attempt's outcome (returns it, to wrap a ``return``)."""
    if outcome in WEBHOOK_OUTCOMES:
        metrics = _m()
        metrics.webhooks.labels(outcome).inc()
        if outcome == "dead":
            metrics.dead_letters.inc()
    return outcome


def redis_error(what: BaseException | str) -> None:
    """A failed Redis call: the exception, or ``"circuit_open"`` for a call the breaker refused."""
    if isinstance(what, str):
        kind = what
    else:
        timeout = isinstance(what, TimeoutError) or "Timeout" in type(what).__name__
        kind = "timeout" if timeout else "connection"
    _m().redis_errors.labels(kind).inc()


def sequencer_backlog(redis: Any, journals: list[str]) -> None:
    """Measure what waits in the journals (``XLEN`` and the oldest entry of each journal).

    ``redis`` is a redis-py client; ``journals`` the journal streams that may hold records.
    Failures are not counted here (the caller's Redis errors are).
    """
    pending, oldest_ms = 0, None
    if journals:
        pipe = redis.pipeline(transaction=False)
        for journal in journals:
            pipe.xlen(journal)
            pipe.xrange(journal, "-", "+", count=1)
        answers = pipe.execute()
        for length, first in zip(answers[::2], answers[1::2], strict=True):
            pending += int(length or 0)
            if first:
                ms = int(str(first[0][0]).partition("-")[0])
                oldest_ms = ms if oldest_ms is None else min(oldest_ms, ms)
    metrics = _m()
    now = time.time()
    metrics.backlog_records.set(pending)
    metrics.backlog_age.set(max(0.0, now - oldest_ms / 1000) if oldest_ms is not None else 0.0)
