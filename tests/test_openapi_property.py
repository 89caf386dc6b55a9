"""A bounded property run of the platform API (``/internal/v1``) against its OpenAPI document.

Schemathesis generates requests from the document (valid bodies, query strings and path parameters,
the ids of real records where a path names one) and sends them to the WSGI app: no answer may be a
5xx, and every answer must be a documented status with a documented content type and a body that
matches its schema. Derandomized with a fixed number of examples, so it is deterministic and quick.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.directory import service as directory
from broker.web.shared.openapi import spec_for
from tests.support.apps import org_payload

EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# The import body is NDJSON text: sent as it is generated (a string).
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def _records(store: Any, settings: Any, catalog: Any) -> dict[str, str]:
    """A user, an organization with them as member, an org app installed there."""
    uid = directory.create_user(store, {"username": "pat"})["id"]
    oid = directory.create_org(store, {"name": "Acme"})["id"]
    directory.add_member(store, oid, uid, "member")
    record, _, _ = apps_svc.register_app(
        store,
        settings,
        catalog,
        org_payload(uid, privacy_policy_url="https://roster.example.com/privacy"),
    )
    inst_svc.install(store, record["client_id"], oid, None, uid)
    return {"uid": uid, "oid": oid, "org_id": oid, "client_id": record["client_id"], "username": "pat"}


def _property(
    operation: Any,
    fixed: dict[str, str],
    headers: dict[str, str],
    statuses: dict[str, set[int]],
    mode: GenerationMode = GenerationMode.POSITIVE,
) -> Any:
    name = f"{operation.method.upper()} {operation.path}"

    @hypothesis_settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode, path_parameters=fixed))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        statuses.setdefault(name, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    return run


def test_platform_api_never_fails_and_always_matches_its_document(
    app: Any, store: Any, settings: Any
) -> None:
    ids = _records(store, settings, app.extensions["broker.catalog"])
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=SchemathesisConfig())
    platform = schema.include(path_regex="^/internal/v1/")
    headers = {"Authorization": f"Bearer {settings.platform_api_key}"}
    operations = [result.ok() for result in platform.get_all_operations()]
    documented = spec_for(app)["paths"]
    assert len(operations) == sum(
        len(ops) for path, ops in documented.items() if path.startswith("/internal/v1/")
    )
    # deletions last (the most nested first), so every operation finds the records its path names
    operations.sort(key=lambda op: (op.method.upper() == "DELETE", -op.path.count("/"), op.path, op.method))
    statuses: dict[str, set[int]] = {}

    for operation in operations:
        fixed = {name: ids[name] for name in ids if "{" + name + "}" in operation.path}
        for mode in GenerationMode:  # valid input, then input the document says is invalid
            try:
                _property(operation, fixed, headers, statuses, mode)()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing of its input can be made invalid

    succeeded = {name for name, codes in statuses.items() if any(code < 300 for code in codes)}
    assert len(succeeded) >= len(operations) // 2, statuses  # real records were reached, not only 404s
