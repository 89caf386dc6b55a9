"""Bounded property runs of every API in /openapi.json, each with real credentials for its audience.

Schemathesis generates requests from the document (valid bodies, query strings and path parameters;
path parameters that name a record are the ids of real ones) and sends them to the WSGI app with
the credentials the audience uses:

- data (``/v1/``, ``/oauth/userinfo``): a person's access token from the code flow, an organization
  token from ``client_credentials``;
- OAuth (token, introspection, revocation, authorize, discovery, JWKS): the app's HTTP Basic
  credentials where the endpoint authenticates a client;
- privacy, admin and developer: the session cookie of a signed-in person (an organization's owner
  and the developer of its apps) and the ``X-CSRFToken`` header;
- ledger: none (public);
- platform: the operator's key (tests/test_openapi_property.py, with the directory records there).

No answer may be a 5xx; every answer must be a documented status with a documented content type
and a body that matches its schema. Derandomized with a fixed number of examples per operation.
Destructive operations (deletions, disbanding, account deletion) go last, so every operation finds
the records its path names.
"""

from __future__ import annotations

from typing import Any

import pytest
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

from broker.web.shared.openapi import spec_for
from tests.support.client import basic
from tests.support.schemathesis_world import World, make_world

EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
AUDIENCES = {
    "data": r"^/v1/|^/oauth/userinfo",
    "oauth": r"^/oauth/(token|introspect|revoke|authorize|jwks)$|^/\.well-known/",
    "privacy": r"^/privacy/v1/",
    "admin": r"^/admin/v1/",
    "developer": r"^/developer/v1/",
    "ledger": r"^/ledger/v1/",
}
# ... and what ends the session the run signs in with (server-side sessions: sign-out is real)
DESTRUCTIVE = ("/disband", "/account/delete", "/secret", "/webhook-secret", "/end", "/end-all", "/password")

schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def _credentials(audience: str, world: World, path: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, cookies) for one operation."""
    if audience == "data":
        token = world.org_token if path.startswith("/v1/orgs/") else world.person_token
        return {"Authorization": f"Bearer {token}"}, {}
    if audience == "oauth":
        if path in ("/oauth/token", "/oauth/introspect", "/oauth/revoke"):
            return basic(world.mini_id, world.mini_secret), {}
        return {}, world.cookies  # authorize: the signed-in person
    if audience in ("privacy", "admin", "developer"):
        return {"X-CSRFToken": world.csrf}, world.cookies
    return {}, {}


def _fixed(audience: str, world: World, path: str) -> dict[str, str]:
    """Path parameters that name real records (the rest are generated)."""
    client_id = {
        "admin": world.org_app_id,
        "developer": world.org_app_id,
        "privacy": world.mini_id,
    }.get(audience, world.mini_id)
    values = {
        "oid": world.org_id,
        "org_id": world.org_id,
        "client_id": client_id,
        "target": world.member_id,
        "receipt_id": world.receipt_id,
        "event_id": world.event_id,
        "log": world.ledger_log,
    }
    return {name: value for name, value in values.items() if "{" + name + "}" in path}


def _property(
    operation: Any,
    fixed: dict[str, str],
    headers: dict[str, str],
    cookies: dict[str, str],
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
        response = case.call(headers=headers, cookies=cookies)
        statuses.setdefault(name, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    return run


def _order(operation: Any) -> tuple[Any, ...]:
    destructive = operation.method.upper() == "DELETE" or operation.path.endswith(DESTRUCTIVE)
    return (destructive, -operation.path.count("/"), operation.path, operation.method)


@pytest.mark.parametrize("audience", sorted(AUDIENCES))
def test_every_api_never_fails_and_always_matches_its_document(
    audience: str, app: Any, store: Any, settings: Any
) -> None:
    world = make_world(app, store, settings)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=SchemathesisConfig())
    part = schema.include(path_regex=AUDIENCES[audience])
    operations = sorted((result.ok() for result in part.get_all_operations()), key=_order)
    documented = [
        (path, method)
        for path, ops in spec_for(app)["paths"].items()
        for method, op in ops.items()
        if op["tags"][0] == audience and not path.startswith("/internal/")
    ]
    assert len(operations) == len(documented) > 0, (operations, documented)
    statuses: dict[str, set[int]] = {}

    for operation in operations:
        headers, cookies = _credentials(audience, world, operation.path)
        for mode in GenerationMode:
            run = _property(
                operation, _fixed(audience, world, operation.path), headers, cookies, statuses, mode
            )
            try:
                run()
            except Unsatisfiable:
                # nothing of this operation's input can be made invalid (no body, no query, path
                # parameters fixed): only a positive run
                assert mode is GenerationMode.NEGATIVE

    succeeded = {name for name, codes in statuses.items() if any(code < 400 for code in codes)}
    assert len(succeeded) >= len(operations) // 2, statuses  # real records were reached, not only 4xx
