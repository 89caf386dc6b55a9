"""DESIGN invariant 7: fail closed, explain clearly. Bad input gets a precise error in the form its
endpoint speaks (RFC 6749 JSON on protocol endpoints, RFC 6750 challenges for bearer errors, problem
JSON on APIs, a readable page in a browser), never a 500, never a traceback, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.client import basic, bearer
from tests.support.factories import make_app


def platform(settings: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.platform_api_key}"}


def snapshot(store: Any) -> set[str]:
    return set(store.redis.scan_iter(count=1000))


BAD_JSON = [
    ("POST", "/internal/v1/users", "not json", "text/plain", 415),
    ("POST", "/internal/v1/users", "{not json", "application/json", 400),
    ("POST", "/internal/v1/users", "[]", "application/json", 400),
    ("POST", "/internal/v1/users", '{"username": 5}', "application/json", 400),
    ("POST", "/internal/v1/orgs", '{"name": ""}', "application/json", 400),
    ("POST", "/internal/v1/apps", '{"name": "x"}', "application/json", 400),
    ("PATCH", "/internal/v1/users/usr_0000000000000000", '{"nickname": "x"}', "application/json", 404),
    ("GET", "/internal/v1/users/not-an-id", None, None, 404),
]


@pytest.mark.parametrize(("method", "path", "body", "ctype", "status"), BAD_JSON)
def test_bad_api_input_is_a_precise_problem_and_writes_nothing(
    client: Any,
    store: Any,
    settings: Any,
    method: str,
    path: str,
    body: str | None,
    ctype: str | None,
    status: int,
) -> None:
    before = snapshot(store)
    headers = platform(settings) | ({"Content-Type": ctype} if ctype else {})
    response = client.open(path, method=method, data=body, headers=headers)
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == status and problem["detail"]
    assert "Traceback" not in text
    assert snapshot(store) == before


def test_bad_protocol_input_is_rfc6749_json(client: Any, store: Any, settings: Any) -> None:
    cid, secret = make_app(store, settings)
    assert secret is not None
    cases = [
        (
            {"grant_type": "password", "username": "a", "password": "b"},
            basic(cid, secret),
            400,
            "unsupported_grant_type",
        ),
        (
            {"grant_type": "authorization_code", "code": "brk_ac_nope"},
            basic(cid, secret),
            400,
            "invalid_grant",
        ),
        ({"grant_type": "client_credentials"}, basic(cid, "wrong-secret"), 401, "invalid_client"),
        ({}, basic(cid, secret), 400, "invalid_request"),  # no grant_type at all
    ]
    for form, headers, status, error in cases:
        response = client.post("/oauth/token", data=form, headers=headers)
        assert response.status_code == status, (form, response.get_data(as_text=True))
        assert response.get_json()["error"] == error
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic abc",
        "Bearer brk_at_app_0000000000000000.short",
        "Bearer " + "x" * 5000,
    ],
)
def test_a_bad_bearer_token_is_an_rfc6750_challenge(client: Any, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/v1/me", headers=headers)
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_browser_gets_a_readable_page_not_json(client: Any) -> None:
    response = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "<h1" in response.get_data(as_text=True)


def test_a_body_over_the_limit_is_refused_before_any_work(client: Any, store: Any, settings: Any) -> None:
    before = snapshot(store)
    big = "x" * (settings.max_body_bytes + 1)
    response = client.post(
        "/internal/v1/users", data=big, headers=platform(settings) | {"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"
    assert snapshot(store) == before


def test_an_unknown_token_reads_nothing(client: Any) -> None:
    response = client.get("/v1/me", headers=bearer("brk_at_app_0123456789abcdef." + "A" * 43))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
