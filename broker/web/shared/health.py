"""Liveness, readiness and metrics for load balancers, orchestrators and Prometheus:
``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from broker import __version__
from broker.core.keyring import ID_TOKEN_ALG, LEDGER_ALG, KeyringError
from broker.errors import BearerError
from broker.migrations import SCHEMA_VERSION, stored_version
from broker.observability import metrics
from broker.ops.engine import server_version
from broker.web.shared import context as web

bp = Blueprint("health", __name__)


class MetricsTokenRequired(BearerError):
    status = 401
    code = "invalid_token"
    title = "Metrics token required"


@bp.get("/healthz")
def healthz() -> Any:
    """The process answers (no I/O)."""
    return jsonify(status="ok")


def configuration_problems() -> list[str]:
    """What would make requests fail although Redis answers: missing secrets, development secrets in
    production, no current signing key (the keys file unreadable, not a JWK set, or every key
    retired). Re-read on each probe: the keys file can change under a running broker."""
    s = web.settings()
    problems = [
        f"{name} is empty"
        for name, value in (
            ("BROKER_SECRET_KEY", s.secret_key),
            ("BROKER_TOKEN_HASH_KEY", s.token_hash_key),
            ("BROKER_PAIRWISE_KEY", s.pairwise_key),
        )
        if not value
    ]
    if s.production and s.dev_defaults:
        problems.append(f"development secrets in production: {', '.join(s.dev_defaults)}")
    for alg in (ID_TOKEN_ALG, LEDGER_ALG):
        try:
            web.keyring().signing_key(alg)
        except KeyringError as exc:
            problems.append(str(exc))
    return problems


def scope_catalog_problems() -> list[str]:
    """The loaded catalog offers something: at least one scope, and every scope reaches a shareable
    field (an app granted a scope that discloses nothing is a broken catalog)."""
    catalog = web.catalog()
    if not catalog.scopes:
        return ["the scope catalog has no scopes"]
    empty = [name for name in catalog.scope_names() if not catalog.fields_of([name])]
    if empty:
        return [f"scopes without a shareable field: {', '.join(empty)}"]
    return []


@bp.get("/readyz")
def readyz() -> Any:
    """Ready to serve: Redis answers, the configuration and signing keys work, the scope catalog
    offers scopes, and, with ``BROKER_REDIS_WAIT_REPLICAS``, records can be confirmed.

    While the circuit breaker is open, ``ping()`` is refused at once and reports False; once the
    open period is over, this ping is the probe that closes it again when Redis answers.
    """
    store = web.store()
    problems = {"configuration": configuration_problems(), "scope_catalog": scope_catalog_problems()}
    checks = {"redis": store.ping(), **{name: not found for name, found in problems.items()}}
    if store.wait_replicas > 0:
        # disclosures are refused (503) while their records cannot be confirmed by WAIT
        checks["replication"] = checks["redis"] and store.replication_ok()
    ready = all(checks.values())
    details = {name: found for name, found in problems.items() if found}
    body = jsonify(
        status="ready" if ready else "unavailable",
        checks=checks,
        redis_circuit=store.breaker.state,
        version=__version__,
        # the data's schema version (None when Redis does not answer) and the one this code reads
        schema_version=stored_version(store) if checks["redis"] else None,
        schema_version_supported=SCHEMA_VERSION,
        engine=server_version(store.redis) if checks["redis"] else None,
        scope_catalog_version=web.catalog().version,
        **({"problems": details} if details else {}),
    )
    return body, (200 if ready else 503)


@bp.get("/metrics")
def metrics_endpoint() -> Any:
    """Prometheus exposition of every worker, for ``Authorization: Bearer <BROKER_METRICS_TOKEN>``.

    Without ``BROKER_METRICS_TOKEN`` there is no ``/metrics`` on the main port (404); use
    ``BROKER_METRICS_PORT`` for a separate, private listener instead (docs/observability.md).
    """
    expected = web.settings().metrics_token
    if not expected:
        abort(404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise MetricsTokenRequired("send Authorization: Bearer <BROKER_METRICS_TOKEN>")
    body, content_type = metrics.render()
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
