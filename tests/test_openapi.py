"""The OpenAPI document matches the routes, validates as OpenAPI 3.1, and real responses fit it."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

PREFIXES = (
    "/v1/",
    "/oauth/",
    "/.well-known/",
    "/ledger/v1/",
    "/privacy/v1/",
    "/admin/v1/",
    "/developer/v1/",
    "/internal/v1/",
)


def _doc(client: Any) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc: dict[str, Any] = response.get_json()
    return doc


def test_every_api_route_is_documented_and_nothing_else(app: Any, client: Any) -> None:
    doc = _doc(client)
    expected = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIXES):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            expected |= {(path, m.lower()) for m in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert expected  # the app really has API routes
    assert documented == expected


def test_document_is_valid_openapi_31(client: Any) -> None:
    doc = _doc(client)
    assert doc["openapi"] == "3.1.0"
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"bearer", "platformKey", "session", "csrf", "clientSecretBasic"}


def _validate(doc: dict[str, Any], name: str, body: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_real_responses_validate(client: Any) -> None:
    doc = _doc(client)
    discovery = client.get("/.well-known/openid-configuration")
    assert discovery.status_code == 200
    _validate(doc, "Discovery", discovery.get_json())
    jwks = client.get("/oauth/jwks")
    assert jwks.status_code == 200
    _validate(doc, "Jwks", jwks.get_json())
    unauthenticated = client.get("/v1/me", headers={"Accept": "application/json"})
    assert unauthenticated.status_code == 401
    bad_grant = client.post("/oauth/token", data={"grant_type": "nope"})
    assert bad_grant.status_code in {400, 401}
    _validate(doc, "OAuthError", bad_grant.get_json())
    problem = client.get("/internal/v1/users/nobody", headers={"Accept": "application/json"})
    assert problem.status_code == 401
    _validate(doc, "Problem", problem.get_json())
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc, "Problem", {"status": "x"})


def test_docs_page_lists_every_operation_without_scripts(client: Any) -> None:
    doc = _doc(client)
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert "<script" not in html
    for path, ops in doc["paths"].items():
        for method in ops:
            assert f"{method.upper()} {path}" in html


def test_data_api_responses_validate(client: Any, store: Any, settings: Any) -> None:
    from tests.records import make_app, make_grant, make_token, make_user

    doc = _doc(client)
    uid = make_user(store, nickname="Alice")
    client_id = make_app(store)
    gid = make_grant(store, client_id, uid, "openid profile", "user_id nickname")
    token = make_token(
        store, settings, client_id, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
    )
    auth = {"Authorization": f"Bearer {token}"}
    me = client.get("/v1/me", headers=auth)
    assert me.status_code == 200
    _validate(doc, "Me", me.get_json())
    info = client.get("/oauth/userinfo", headers=auth)
    assert info.status_code == 200
    _validate(doc, "UserInfo", info.get_json())
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc, "Me", {"nickname": "no user_id"})
