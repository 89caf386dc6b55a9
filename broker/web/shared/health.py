"""Liveness and readiness for load balancers and orchestrators: ``/healthz`` and ``/readyz``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from broker import __version__
from broker.migrations import SCHEMA_VERSION, stored_version
from broker.ops.engine import server_version
from broker.web.shared import context as web

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """The process answers (no I/O)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    """Ready to serve: Redis answers and, with ``BROKER_REDIS_WAIT_REPLICAS``, records can be confirmed.

    While the circuit breaker is open, ``ping()`` is refused at once and reports False; once the
    open period is over, this ping is the probe that closes it again when Redis answers.
    """
    store = web.store()
    checks = {"redis": store.ping(), "configuration": True, "scope_catalog": True}
    if store.wait_replicas > 0:
        # disclosures are refused (503) while their records cannot be confirmed by WAIT
        checks["replication"] = checks["redis"] and store.replication_ok()
    ready = all(checks.values())
    body = jsonify(
        status="ready" if ready else "unavailable",
        checks=checks,
        redis_circuit=store.breaker.state,
        version=__version__,
        # the data's schema version (None when Redis does not answer) and the one this code reads
        schema_version=stored_version(store) if checks["redis"] else None,
        schema_version_supported=SCHEMA_VERSION,
        engine=server_version(store.redis) if checks["redis"] else None,
    )
    return body, (200 if ready else 503)
