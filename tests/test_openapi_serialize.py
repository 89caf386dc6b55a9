"""Responses are the dump of the schema that documents them (``@documented`` serializes).

A view returns plain data; the real decorator dumps it through the schema documented for the status,
so a member the document does not name cannot leave, and a missing required member, a ``null``
where none is allowed, a value of the wrong type or an undocumented status is refused.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import UndocumentedResponse, documented, operation_of


def _swap(app: Any, endpoint: str, body: Any) -> None:
    """Replace a view by one that returns ``body``, under the same documentation and the real decorator."""
    op = operation_of(app.view_functions[endpoint])
    assert op is not None and op.response is rs.OrgSchema

    @documented(op.response, errors=op.errors)
    def view(oid: str) -> Any:
        return body

    app.view_functions[endpoint] = view


@pytest.fixture
def platform(settings: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.platform_api_key}"}


@pytest.fixture
def acme(client: Any, platform: Any) -> dict[str, Any]:
    made = client.post("/internal/v1/orgs", json={"name": "Acme"}, headers=platform)
    assert made.status_code == 201
    return dict(made.get_json())


def _get(client: Any, platform: Any, acme: dict[str, Any]) -> Any:
    return client.get(f"/internal/v1/orgs/{acme['id']}", headers=platform)


def _refused(client: Any, platform: Any, acme: dict[str, Any], caplog: Any, match: str) -> None:
    """The answer is a 500 (a bug of the view, logged with what did not fit), never the body."""
    client.check_contract = False  # a 500 is not in the document: the point here is that it is one
    with caplog.at_level(logging.ERROR, logger="broker.web"):
        answer = _get(client, platform, acme)
    assert answer.status_code == 500 and answer.get_json()["error"] == "server_error"
    raised = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(isinstance(e, UndocumentedResponse) and re.search(match, str(e)) for e in raised), raised


def test_what_goes_out_is_the_schema_dump(app: Any, client: Any, platform: Any, acme: dict[str, Any]) -> None:
    answer = _get(client, platform, acme)
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.get_json() == acme == rs.OrgSchema().dump(acme)


def test_a_member_the_document_does_not_name_is_dropped(
    app: Any, client: Any, platform: Any, acme: dict[str, Any]
) -> None:
    _swap(app, "internal.get_org", {**acme, "password_hash": "secret"})
    answer = _get(client, platform, acme)
    assert answer.status_code == 200
    assert answer.get_json() == acme and "password_hash" not in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name": 42}, "name"),  # wrong type
        ({"allow_member_mini_programs": "yes please"}, "allow_member_mini_programs"),
        ({"name": None}, "name"),  # null where none is allowed
        ({"allow_member_mini_programs": None}, "allow_member_mini_programs"),
        ({"created_at": str(1_700_000_000)}, "/created_at is str, not Integer"),  # loads, but not as it is
        ({"allow_member_mini_programs": "true"}, "/allow_member_mini_programs is str, not Boolean"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(
    app: Any,
    client: Any,
    platform: Any,
    acme: dict[str, Any],
    change: dict[str, Any],
    problem: str,
    caplog: Any,
) -> None:
    _swap(app, "internal.get_org", {**acme, **change})
    _refused(client, platform, acme, caplog, problem)


def test_a_missing_required_member_is_refused(
    app: Any, client: Any, platform: Any, acme: dict[str, Any], caplog: Any
) -> None:
    _swap(app, "internal.get_org", {k: v for k, v in acme.items() if k != "allow_member_mini_programs"})
    _refused(client, platform, acme, caplog, "allow_member_mini_programs.*required")


def test_an_undocumented_status_is_refused(
    app: Any, client: Any, platform: Any, acme: dict[str, Any], caplog: Any
) -> None:
    _swap(app, "internal.get_org", (acme, 202))
    _refused(client, platform, acme, caplog, "status 202 is not documented")


def test_headers_the_view_returns_go_out(app: Any, client: Any, platform: Any, acme: dict[str, Any]) -> None:
    _swap(app, "internal.get_org", (acme, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}))
    answer = _get(client, platform, acme)
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["Pragma"] == "no-cache"
    assert answer.get_json() == acme


def test_numbers_keep_their_json_form() -> None:
    field = rs.Number()
    assert field.serialize("t", {"t": 5}) == 5 and isinstance(field.serialize("t", {"t": 5}), int)
    assert field.serialize("t", {"t": 1.5}) == 1.5


CONVERTED = (
    "broker/web/platform/directory.py",
    "broker/web/platform/apps.py",
    "broker/web/admin/api.py",
    "broker/web/admin/console.py",
    "broker/web/developer/api.py",
    "broker/web/developer/console.py",
    "broker/web/privacy/api.py",
    "broker/web/privacy/receipts.py",
    "broker/web/ledger/api.py",
    "broker/web/shared/consoles.py",
)


@pytest.mark.parametrize("path", CONVERTED)
def test_converted_modules_build_no_json_by_hand(path: str) -> None:
    """Their JSON goes out through ``@documented`` only (streams and 204s are ``Response`` objects)."""
    from pathlib import Path

    source = (Path(__file__).parent.parent / path).read_text()
    assert "jsonify" not in source and "json.dumps" not in source
