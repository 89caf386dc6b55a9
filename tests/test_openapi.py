"""The OpenAPI document: it matches the routes, validates as OpenAPI 3.1, describes every operation
field by field, and real responses of every area match it.

Every test in the suite checks its API responses through ``ContractClient`` (support/openapi_contract.py);
the tests here also make sure that check cannot pass silently, and drive each area through the
responses the rest of the suite does not reach.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from flask import Response, jsonify

from broker.apps import registry as apps_svc
from broker.consent import grants
from broker.consent import grants as grants_svc
from broker.consent import installations as inst_svc
from broker.consent.person import PROFILE_FIELDS_REMOVED
from broker.directory import service as directory
from broker.web.shared.openapi import build_spec, operation_of
from tests.support.apps import org_payload, outbox_events
from tests.support.client import bearer
from tests.support.factories import make_app, make_grant, make_token, make_user
from tests.support.ledger import log_of, record, write_legacy_log
from tests.support.openapi_contract import ContractClient, ContractError, contract_for
from tests.support.privacy import sequence
from tests.support.signin import session_sign_in

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
ERROR_SCHEMAS = {"#/components/schemas/Problem", "#/components/schemas/OAuthError"}


def _doc(client: Any) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc: dict[str, Any] = response.get_json()
    return doc


def _operations(doc: dict[str, Any], tag: str | None = None) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if tag is None or op["tags"] == [tag]
    }


def _succeeded(client: ContractClient) -> set[tuple[str, str]]:
    """(method, path) of every operation that answered 2xx/3xx and matched the document."""
    return {(method, path) for method, path, status, _ in client.checked if status < 400}


def _component(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return found


# -- the document ---------------------------------------------------------------------------------


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
    undocumented = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(PREFIXES) and operation_of(app.view_functions[rule.endpoint]) is None
    ]
    assert undocumented == [], "views without @documented(...)"


def test_document_is_valid_openapi_31(client: Any) -> None:
    doc = _doc(client)
    assert doc["openapi"] == "3.1.0"
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"bearer", "platformKey", "session", "csrf", "clientSecretBasic"}


def test_document_is_deterministic(app: Any) -> None:
    assert json.dumps(build_spec(app), sort_keys=True) == json.dumps(build_spec(app), sort_keys=True)


def test_no_operation_answers_with_a_placeholder(client: Any) -> None:
    """Every success body is a named component listing its members; every error is a Problem or an
    OAuth error; no catch-all schema is left."""
    doc = _doc(client)
    schemas = doc["components"]["schemas"]
    assert "GenericObject" not in schemas
    for name, schema in schemas.items():
        assert schema.get("type") == "object", name
        assert schema.get("properties") or name == "Revoked", f"{name} lists no members"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert "x-undocumented" not in op, where
            assert op["summary"], where
            responses = op["responses"]
            assert "default" not in responses, where
            success = [code for code in responses if code[0] in "23"]
            assert len(success) >= 1, where
            for code in success:
                content = responses[code].get("content")
                if code in ("204", "302"):
                    assert not content, where
                    continue
                assert content, f"{where} {code} has no body"
                for ctype, media in content.items():
                    schema = media["schema"]
                    if ctype == "application/x-ndjson":
                        assert "$ref" in media["x-itemSchema"], where
                    elif ctype.endswith("json"):
                        assert "$ref" in schema, f"{where} {code} {ctype}"
                        assert _component(doc, schema["$ref"]).get("type") == "object"
                    else:
                        assert ctype in {"text/csv", "application/jose", "text/html"}, where
            for code in responses:
                if code[0] == "4" or code[0] == "5":
                    content = responses[code]["content"]
                    refs = {m["schema"].get("$ref") for m in content.values()}
                    assert refs <= ERROR_SCHEMAS or set(content) == {"text/html"}, f"{where} {code}"
                    assert "4XX" != code, f"{where}: statuses are listed one by one"
            body = op.get("requestBody")
            if body is not None:
                for media in body["content"].values():
                    ref = media.get("x-itemSchema", media["schema"]).get("$ref")
                    assert ref and _component(doc, ref)["properties"], where


def test_real_statuses_per_operation(client: Any) -> None:
    doc = _doc(client)
    paths = doc["paths"]

    def codes(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert {"201", "400", "401", "409", "415"} <= codes("/internal/v1/users", "post")
    assert "200" not in codes("/internal/v1/users", "post")
    assert {"204", "401", "404"} <= codes("/internal/v1/users/{uid}", "delete")
    assert {"200", "201"} <= codes("/internal/v1/orgs/{oid}/members/{uid}", "put")
    assert {"302", "400"} <= codes("/oauth/authorize", "get")
    assert paths["/oauth/authorize"]["get"]["responses"]["400"]["content"].keys() == {"text/html"}
    assert {"200", "400", "401"} <= codes("/oauth/token", "post")
    token_error = paths["/oauth/token"]["post"]["responses"]["400"]["content"]
    assert token_error["application/json"]["schema"]["$ref"].endswith("/OAuthError")
    assert {"200", "401", "403"} <= codes("/v1/me", "get")
    assert {"201", "403", "404", "409"} <= codes("/admin/v1/orgs/{oid}/installations", "post")
    assert {"204", "403", "404"} <= codes("/admin/v1/orgs/{oid}/roles/{target}", "delete")
    assert {"200", "404", "409"} <= codes("/developer/v1/apps/{client_id}/secret", "post")
    assert "Location" in paths["/developer/v1/apps"]["post"]["responses"]["201"]["headers"]
    listing = paths["/privacy/v1/disclosures"]["get"]["responses"]["200"]["content"]
    assert set(listing) == {"application/json", "application/x-ndjson", "text/csv"}
    receipt = paths["/privacy/v1/receipts/{receipt_id}"]["get"]["responses"]["200"]["content"]
    assert set(receipt) == {"application/json", "application/jose"}
    assert paths["/ledger/v1/keys"]["get"]["security"] == []
    assert paths["/admin/v1/orgs/{oid}"]["get"]["security"] == [{"session": []}]
    assert paths["/admin/v1/orgs/{oid}/disband"]["post"]["security"] == [{"session": [], "csrf": []}]


def test_query_parameters_have_types_bounds_enums_and_defaults(client: Any) -> None:
    doc = _doc(client)

    def params(path: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in doc["paths"][path]["get"].get("parameters", []) if p["in"] == "query"}

    for path in ("/privacy/v1/disclosures", "/admin/v1/orgs/{oid}/disclosures", "/developer/v1/disclosures"):
        found = params(path)
        assert found["limit"]["schema"] == {"type": "integer", "default": 50, "minimum": 1, "maximum": 100}
        assert found["format"]["schema"]["enum"] == ["json", "ndjson", "csv"]
        assert found["format"]["schema"]["default"] == "json"
        assert found["app"]["schema"]["pattern"] == "^app_[0-9a-f]{16}$"
        assert {"since", "until", "cursor"} <= set(found)
    assert "person" not in params("/privacy/v1/disclosures")
    assert "person" in params("/admin/v1/orgs/{oid}/disclosures")
    assert params("/v1/orgs/{org_id}/members")["limit"]["schema"] == {
        "type": "integer",
        "default": 50,
        "minimum": 1,
        "maximum": 100,
    }
    assert params("/v1/orgs/{org_id}/members")["cursor"]["schema"]["maxLength"] == 64
    members = params("/internal/v1/orgs/{oid}/members")
    assert members["limit"]["schema"]["maximum"] == 1000 and members["limit"]["schema"]["default"] == 100
    assert members["after"]["schema"]["type"] == "integer"
    consistency = params("/ledger/v1/consistency")
    assert consistency["first"]["required"] and consistency["second"]["required"]
    assert params("/admin/v1/orgs/{oid}/installations/{client_id}/impact")["action"]["schema"]["enum"] == [
        "disable",
        "enable",
        "remove",
    ]
    assert params("/privacy/v1/receipts/{receipt_id}")["format"]["schema"]["default"] == "jws"
    leaf = doc["paths"]["/ledger/v1/leaves/{index}"]["get"]["parameters"][0]
    assert leaf == {
        "name": "index",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
        "description": "a leaf index",
    }


def test_request_bodies_are_the_schemas_the_views_load(client: Any) -> None:
    doc = _doc(client)
    schemas = doc["components"]["schemas"]

    def body(path: str, method: str) -> str:
        content = doc["paths"][path][method]["requestBody"]["content"]
        media = next(iter(content.values()))
        ref: str = media.get("x-itemSchema", media["schema"])["$ref"]
        return ref.rsplit("/", 1)[-1]

    assert body("/internal/v1/apps", "post") == "AppCreate"
    assert body("/developer/v1/apps", "post") == "AppCreateWithoutDeveloperId"
    assert "developer_id" in schemas["AppCreate"]["properties"]
    assert "developer_id" not in schemas["AppCreateWithoutDeveloperId"]["properties"]
    assert body("/internal/v1/apps/{client_id}", "patch") == body("/developer/v1/apps/{client_id}", "patch")
    assert body("/internal/v1/users", "post") == "UserCreate"
    assert body("/admin/v1/orgs/{oid}/installations", "post") == "AdminInstall"
    assert body("/internal/v1/orgs/{org_id}/installations", "post") == "PlatformInstall"
    assert body("/admin/v1/orgs/{oid}/roles/{target}", "put") == "AdminSubAdminWithoutUserId"
    assert body("/internal/v1/import", "post") == "ImportLine"
    assert body("/oauth/token", "post") == "TokenRequest"
    assert schemas["AdminInstall"]["additionalProperties"] is False  # unknown fields are refused


def test_data_schemas_follow_the_scope_catalog(client: Any) -> None:
    schemas = _doc(client)["components"]["schemas"]
    assert schemas["Me"]["required"] == ["user_id"]
    assert set(schemas["Me"]["properties"]) == {"user_id", "nickname", "avatar", "contact_permission"}
    assert set(schemas["UserInfo"]["properties"]) == {"sub", "nickname", "picture", "contact_permission"}
    # the admin chooses the member fields one by one (issue 13, item 2): only the app's id always flows
    assert set(schemas["MemberProfile"]["required"]) == {"user_id"}
    member = schemas["MemberProfile"]["properties"]
    assert set(member) == {"user_id", "nickname", "avatar", "departments", "org_name"}
    assert member["departments"]["type"] == ["array", "null"]
    assert not set(schemas["Me"]["properties"]) & (set(PROFILE_FIELDS_REMOVED) - {"nickname", "avatar"})


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
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    assert "≥ 1; ≤ 100; default 50" in html  # the bounds of a limit parameter are shown


# -- the response check cannot pass silently ----------------------------------------------------------


@pytest.fixture
def platform(settings: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.platform_api_key}"}


def test_every_client_of_the_suite_checks_the_contract(
    app: Any, client: Any, settings: Any, store: Any
) -> None:
    from broker.app import create_app

    assert isinstance(client, ContractClient) and client.check_contract
    assert isinstance(app.test_client(), ContractClient)
    assert isinstance(create_app(settings, store).test_client(), ContractClient)  # apps a test makes itself
    client.get("/ledger/v1/keys")
    assert client.checked == [("get", "/ledger/v1/keys", 200, "application/json")]
    client.get("/healthz")  # not an API route: nothing to check
    assert len(client.checked) == 1


def _swap(app: Any, endpoint: str, view: Any) -> None:
    app.view_functions[endpoint] = view


def test_a_body_that_does_not_match_fails_the_test(app: Any, client: Any, platform: Any) -> None:
    org = client.post("/internal/v1/orgs", json={"name": "Acme"}, headers=platform).get_json()
    url = f"/internal/v1/orgs/{org['id']}"
    assert client.get(url, headers=platform).status_code == 200

    _swap(app, "internal.get_org", lambda oid: jsonify({**org, "name": 42}))
    with pytest.raises(ContractError, match=r"GET /internal/v1/orgs/\{oid\}.*at name: 42 is not of type"):
        client.get(url, headers=platform)

    missing = {k: v for k, v in org.items() if k != "allow_member_mini_programs"}
    _swap(app, "internal.get_org", lambda oid: jsonify(missing))
    with pytest.raises(ContractError, match="'allow_member_mini_programs' is a required property"):
        client.get(url, headers=platform)

    _swap(app, "internal.get_org", lambda oid: jsonify({**org, "secret": "x"}))
    with pytest.raises(ContractError, match="'secret' was unexpected"):
        client.get(url, headers=platform)  # a member the document does not name

    _swap(app, "internal.get_org", lambda oid: Response("not json", mimetype="application/json"))
    with pytest.raises(ContractError, match="not JSON"):
        client.get(url, headers=platform)


def test_an_undocumented_status_or_content_type_fails_the_test(app: Any, client: Any, platform: Any) -> None:
    org = client.post("/internal/v1/orgs", json={"name": "Acme"}, headers=platform).get_json()
    url = f"/internal/v1/orgs/{org['id']}"

    _swap(app, "internal.get_org", lambda oid: (jsonify(org), 202))
    with pytest.raises(ContractError, match="answered 202, which the OpenAPI document does not list"):
        client.get(url, headers=platform)

    _swap(app, "internal.get_org", lambda oid: Response("<p>hi</p>", mimetype="text/html"))
    with pytest.raises(ContractError, match="answered 200 as 'text/html'"):
        client.get(url, headers=platform)

    problem = {"type": "about:blank", "title": "x", "status": 409, "error": "conflict", "detail": "x"}
    _swap(app, "internal.get_org", lambda oid: (jsonify(problem), 409))
    with pytest.raises(ContractError, match="answered 409"):
        client.get(url, headers=platform)  # a real Problem, but GET /orgs/{oid} never answers 409


def test_an_error_body_and_an_ndjson_line_are_checked_too(app: Any, client: Any, platform: Any) -> None:
    wrong = Response('{"error": "not_found"}', status=404, mimetype="application/problem+json")
    _swap(app, "internal.get_org", lambda oid: wrong)
    with pytest.raises(ContractError, match="404: the body does not match"):
        client.get("/internal/v1/orgs/org_0000000000000000", headers=platform)

    def export() -> Response:
        return Response('{"type": "profile", "data": {}}\n{"type": "gossip", "data": {}}\n',
                        mimetype="application/x-ndjson")  # fmt: skip

    _swap(app, "privacy.export", export)
    with pytest.raises(ContractError, match=r"200 line 2: .*'gossip' is not one of"):
        client.get("/privacy/v1/export")


# -- each area, driven through its main responses -------------------------------------------------------


def test_platform_api_responses_match(client: Any, settings: Any, platform: Any) -> None:
    doc = _doc(client)
    h = platform
    dev = client.post("/internal/v1/users", json={"username": "dev", "password": "pw-dev-12345"}, headers=h)
    assert dev.status_code == 201 and dev.headers["Location"] == f"/internal/v1/users/{dev.get_json()['id']}"
    dev_id = dev.get_json()["id"]
    owner_id = client.post("/internal/v1/users", json={"username": "owner"}, headers=h).get_json()["id"]
    assert client.get(f"/internal/v1/users/{dev_id}", headers=h).status_code == 200
    assert client.get("/internal/v1/users/by-username/dev", headers=h).status_code == 200
    changed = client.patch(f"/internal/v1/users/{dev_id}", json={"nickname": "Dev"}, headers=h)
    assert changed.get_json()["nickname"] == "Dev"
    assert client.post("/internal/v1/users", json={"username": "dev"}, headers=h).status_code == 409
    assert client.post("/internal/v1/users", json={"username": "x", "bad": 1}, headers=h).status_code == 400
    assert client.post("/internal/v1/users", data="x", headers=h).status_code == 415
    assert client.get(f"/internal/v1/users/{dev_id}").status_code == 401

    oid = client.post("/internal/v1/orgs", json={"name": "Acme"}, headers=h).get_json()["id"]
    assert client.get(f"/internal/v1/orgs/{oid}", headers=h).status_code == 200
    assert client.patch(f"/internal/v1/orgs/{oid}", json={"name": "Acme Ltd"}, headers=h).status_code == 200
    assert (
        client.put(
            f"/internal/v1/orgs/{oid}/members/{owner_id}", json={"role": "owner"}, headers=h
        ).status_code
        == 201
    )
    assert (
        client.put(
            f"/internal/v1/orgs/{oid}/members/{owner_id}", json={"role": "owner"}, headers=h
        ).status_code
        == 200
    )
    assert (
        client.put(
            f"/internal/v1/orgs/{oid}/members/{dev_id}", json={"role": "member"}, headers=h
        ).status_code
        == 201
    )
    page = client.get(f"/internal/v1/orgs/{oid}/members?limit=1", headers=h).get_json()
    assert len(page["members"]) == 1 and isinstance(page["next_cursor"], int)
    assert (
        client.get(f"/internal/v1/orgs/{oid}/members?after={page['next_cursor']}", headers=h).status_code
        == 200
    )
    assert client.get(f"/internal/v1/orgs/{oid}/members/{dev_id}", headers=h).get_json()["role"] == "member"
    assert client.get(f"/internal/v1/users/{dev_id}/orgs", headers=h).get_json() == {"orgs": [oid]}

    deps = f"/internal/v1/orgs/{oid}/departments"
    eng = client.post(deps, json={"name": "Engineering"}, headers=h)
    assert eng.status_code == 201 and eng.headers["Location"] == f"{deps}/{eng.get_json()['id']}"
    dep_id = eng.get_json()["id"]
    web_id = client.post(deps, json={"name": "Web", "parent": dep_id}, headers=h).get_json()["id"]
    assert client.get(deps, headers=h).get_json()["departments"][1]["path"] == "Engineering / Web"
    assert client.patch(f"{deps}/{dep_id}", json={"parent": web_id}, headers=h).status_code == 400  # a cycle
    assert client.patch(f"{deps}/{web_id}", json={"name": "Frontend"}, headers=h).status_code == 200
    placed = client.put(
        f"/internal/v1/orgs/{oid}/members/{dev_id}/departments", json={"departments": [web_id]}, headers=h
    )
    assert placed.get_json()["departments"] == [web_id]
    assert client.get(f"/internal/v1/orgs/{oid}/members/{dev_id}/departments", headers=h).status_code == 200
    assert client.get(f"{deps}/{web_id}", headers=h).get_json()["members"] == [dev_id]
    assert client.delete(f"{deps}/{dep_id}", headers=h).status_code == 409  # it has a sub-department

    payload = org_payload(dev_id, privacy_policy_url="https://roster.example.com/privacy")
    created = client.post("/internal/v1/apps", json=payload, headers=h)
    assert created.status_code == 201 and created.get_json()["client_secret"]
    client_id = created.get_json()["client_id"]
    assert (
        client.get(f"/internal/v1/apps?developer_id={dev_id}", headers=h).get_json()["apps"][0]["client_id"]
        == client_id
    )
    assert client.get(f"/internal/v1/apps/{client_id}", headers=h).status_code == 200
    assert (
        client.patch(f"/internal/v1/apps/{client_id}", json={"description": "Rosters"}, headers=h).status_code
        == 200
    )
    assert client.post(f"/internal/v1/apps/{client_id}/secret", headers=h).status_code == 200
    assert client.post(f"/internal/v1/apps/{client_id}/webhook-secret", headers=h).status_code == 200
    assert (
        client.post(f"/internal/v1/apps/{client_id}/secret/revoke-previous", headers=h).get_json()["revoked"]
        == 1
    )
    reviewed = client.post(f"/internal/v1/apps/{client_id}/review", json={"decision": "approve"}, headers=h)
    assert reviewed.status_code == 200 and reviewed.get_json()["review"] == "approved"
    assert client.post(f"/internal/v1/apps/{client_id}/webhook-secret/revoke-previous", headers=h).get_json()[
        "revoked"
    ]
    assert (
        client.post(f"/internal/v1/apps/{client_id}/suspend", headers=h).get_json()["status"] == "suspended"
    )
    assert client.post(f"/internal/v1/apps/{client_id}/suspend", headers=h).status_code == 409
    assert client.post(f"/internal/v1/apps/{client_id}/restore", headers=h).get_json()["status"] == "active"

    base = f"/internal/v1/orgs/{oid}/installations"
    assert (
        client.post(base, json={"client_id": client_id, "installed_by": owner_id}, headers=h).status_code
        == 201
    )
    assert client.post(base, json={"client_id": client_id}, headers=h).status_code == 409
    assert client.get(base, headers=h).status_code == 200
    assert client.get(f"{base}/{client_id}", headers=h).status_code == 200
    assert (
        client.patch(f"{base}/{client_id}", json={"enabled": False}, headers=h).get_json()["enabled"] is False
    )
    assert (
        client.patch(f"{base}/{client_id}", json={"scopes": ["org.members.read"]}, headers=h).status_code
        == 200
    )
    limited = client.patch(f"{base}/{client_id}", json={"departments": [dep_id]}, headers=h).get_json()
    assert limited["departments"] == [dep_id] and limited["covered_members"] == 1
    assert client.delete(f"{base}/{client_id}", headers=h).status_code == 204
    assert client.delete(f"{deps}/{web_id}", headers=h).status_code == 204

    lines = [
        {"type": "user", "username": "carol"},
        {"type": "org", "id": "org_00000000000000aa", "name": "Imported"},
        {"type": "membership", "org_id": "org_00000000000000aa", "username": "carol", "role": "member"},
    ]
    body = "\n".join(json.dumps(line) for line in lines)
    imported = client.post("/internal/v1/import", data=body, content_type="application/x-ndjson", headers=h)
    assert imported.get_json() == {"imported": {"users": 1, "orgs": 1, "memberships": 1, "departments": 0}}
    bad = client.post(
        "/internal/v1/import", data='{"type": "user"}', content_type="application/x-ndjson", headers=h
    )
    assert bad.status_code == 400 and bad.get_json()["errors"]

    assert client.delete(f"/internal/v1/orgs/{oid}/members/{dev_id}", headers=h).status_code == 204
    assert client.delete(f"/internal/v1/apps/{client_id}", headers=h).status_code == 204
    assert client.delete(f"/internal/v1/users/{dev_id}", headers=h).status_code == 204
    assert client.get(f"/internal/v1/users/{dev_id}", headers=h).status_code == 404
    assert client.delete(f"/internal/v1/orgs/{oid}", headers=h).status_code == 204
    assert _operations(doc, "platform") <= _succeeded(client)


def _world(store: Any, settings: Any, catalog: Any) -> dict[str, str]:
    """Two people in an org (owner, member), a developer with an org app and a mini-program, an
    installation, and a grant with a receipt from the member to the mini-program."""
    people = {
        name: directory.create_user(store, {"username": name, "password": f"pw-{name}-12345"})["id"]
        for name in ("owner", "member", "dev")
    }
    oid = directory.create_org(store, {"name": "Acme"})["id"]
    directory.add_member(store, oid, people["owner"], "owner")
    directory.add_member(store, oid, people["member"], "member")
    org_app, secret, _ = apps_svc.register_app(
        store,
        settings,
        catalog,
        {
            "kind": "org_app",
            "client_type": "confidential",
            "name": "Roster",
            "developer_id": people["dev"],
            "contact": "dev@example.com",
            "privacy_policy_url": "https://roster.example.com/privacy",
            "redirect_uris": ["https://roster.example.com/cb"],
            "scopes": ["org.members.read"],
            "webhook_url": "https://roster.example.com/hooks",
        },
    )
    other, _, _ = apps_svc.register_app(
        store, settings, catalog, {**org_app, "name": "Payroll", "developer_id": people["dev"]}
    )
    mini, _, _ = apps_svc.register_app(
        store,
        settings,
        catalog,
        {
            "kind": "mini_program",
            "client_type": "public",
            "name": "Notes",
            "developer_id": people["dev"],
            "contact": "dev@example.com",
            "privacy_policy_url": "https://notes.example.com/privacy",
            "redirect_uris": ["http://127.0.0.1:8765/callback"],
            "scopes": ["openid", "profile"],
        },
    )
    inst_svc.install(store, org_app["client_id"], oid, None, people["owner"])
    grant = grants_svc.save_consent(
        store,
        settings,
        catalog,
        mini["client_id"],
        people["member"],
        ["openid", "profile"],
        ["user_id", "nickname", "avatar"],
        "notes",
        "v1",
    )
    assert grant is not None
    assert secret is not None
    return {
        **people,
        "oid": oid,
        "org_app": org_app["client_id"],
        "org_secret": secret,
        "other_app": other["client_id"],
        "mini": mini["client_id"],
        "grant": grant["id"],
    }


@pytest.fixture
def world(app: Any, store: Any, settings: Any) -> dict[str, str]:
    return _world(store, settings, app.extensions["broker.catalog"])


def _csrf(client: Any, area: str) -> dict[str, str]:
    token = client.get(f"/{area}/v1/csrf-token").get_json()
    assert token["header"] == "X-CSRFToken"
    return {"X-CSRFToken": token["csrf_token"]}


def test_oauth_and_data_api_responses_match(client: Any, store: Any, settings: Any, world: Any) -> None:
    doc = _doc(client)
    assert client.get("/.well-known/openid-configuration").status_code == 200
    assert client.get("/.well-known/oauth-authorization-server").status_code == 200
    assert client.get("/oauth/jwks").status_code == 200
    basic = (world["org_app"], world["org_secret"])
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": world["oid"], "scope": "org.members.read"},
        auth=basic,
    )
    assert token.status_code == 200, token.get_json()
    org_token = token.get_json()["access_token"]
    assert client.post("/oauth/token", data={"grant_type": "nope"}, auth=basic).status_code == 400
    assert (
        client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(basic[0], "x")
        ).status_code
        == 401
    )
    introspected = client.post("/oauth/introspect", data={"token": org_token}, auth=basic).get_json()
    assert introspected["active"] is True and introspected["org_id"] == world["oid"]
    authorize = client.get(f"/oauth/authorize?response_type=code&client_id={world['mini']}&scope=openid")
    assert authorize.status_code == 302
    assert client.get("/oauth/authorize?client_id=app_0000000000000000").status_code == 400
    # a deletion request, acknowledged by the app with its client credentials
    notes, notes_secret = make_app(store, settings)
    make_grant(store, settings, notes, world["member"], "openid profile", "user_id nickname avatar")
    grants.revoke_grant(store, settings, notes, world["member"])
    request_id = next(
        e["data"]["request_id"] for e in outbox_events(store, notes) if e["type"] == "deletion.requested"
    )
    assert (
        client.post(f"/v1/deletion-requests/{request_id}/ack", auth=(notes, notes_secret)).status_code == 200
    )
    assert client.post(f"/v1/deletion-requests/{request_id}/ack").status_code == 401
    assert client.post("/v1/deletion-requests/del_x/ack", auth=(notes, notes_secret)).status_code == 404

    page = client.get(f"/v1/orgs/{world['oid']}/members?limit=1", headers=bearer(org_token)).get_json()
    assert len(page["members"]) == 1 and page["next_cursor"]
    member_id = page["members"][0]["user_id"]
    assert (
        client.get(f"/v1/orgs/{world['oid']}/members/{member_id}", headers=bearer(org_token)).status_code
        == 200
    )
    assert client.get(f"/v1/orgs/{world['oid']}/members/nobody", headers=bearer(org_token)).status_code == 404

    person = make_token(
        store, settings, world["mini"], kind="grant", subject=world["member"], grant_id=world["grant"],
        scopes="openid profile",
    )  # fmt: skip
    assert set(client.get("/v1/me", headers=bearer(person)).get_json()) == {"user_id", "nickname", "avatar"}
    assert client.get("/oauth/userinfo", headers=bearer(person)).get_json()["sub"]
    assert client.post("/oauth/userinfo", headers=bearer(person)).status_code == 200
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me", headers=bearer(org_token)).status_code == 403  # the wrong kind of token
    assert client.post("/oauth/revoke", data={"token": org_token}, auth=basic).get_json() == {}
    assert client.post("/oauth/introspect", data={"token": org_token}, auth=basic).get_json() == {
        "active": False
    }
    assert _operations(doc, "data") | _operations(doc, "oauth") <= _succeeded(client)


def test_privacy_and_ledger_responses_match(client: Any, store: Any, settings: Any, world: Any) -> None:
    doc = _doc(client)
    assert client.get("/ledger/v1/checkpoints/latest").status_code == 404  # nothing signed yet
    person = make_token(
        store, settings, world["mini"], kind="grant", subject=world["member"], grant_id=world["grant"],
        scopes="openid profile",
    )  # fmt: skip
    for _ in range(3):
        assert client.get("/v1/me", headers=bearer(person)).status_code == 200
    sequence(store, settings)
    assert client.get("/privacy/v1/apps").status_code == 401
    session_sign_in(client, world["member"])
    csrf = _csrf(client, "privacy")

    apps = client.get("/privacy/v1/apps").get_json()
    assert [a["client_id"] for a in apps["apps"]] == [world["mini"]]
    assert [a["client_id"] for a in apps["org_apps"]] == [world["org_app"]]
    page = client.get("/privacy/v1/disclosures?limit=2").get_json()
    assert len(page["records"]) == 2 and page["next_cursor"] and page["checkpoint"]
    assert client.get(f"/privacy/v1/disclosures?cursor={page['next_cursor']}").status_code == 200
    ndjson = client.get("/privacy/v1/disclosures?format=ndjson")
    assert len(ndjson.get_data(as_text=True).splitlines()) == 3
    assert client.get("/privacy/v1/disclosures?format=csv").mimetype == "text/csv"
    assert client.get("/privacy/v1/disclosures?limit=0").status_code == 400
    receipts = client.get("/privacy/v1/receipts").get_json()["receipts"]
    assert [r["action"] for r in receipts] == ["granted"]
    receipt_url = f"/privacy/v1/receipts/{receipts[0]['id']}"
    assert client.get(receipt_url).mimetype == "application/jose"
    assert client.get(f"{receipt_url}?format=json").get_json()["receipt"]["action"] == "granted"
    assert client.get("/privacy/v1/receipts/00000000-0000-0000-0000-000000000000").status_code == 404
    assert len(client.get("/privacy/v1/export").get_data(as_text=True).splitlines()) > 3
    assert client.get("/privacy/v1/notices").get_json()["notices"][0]["what"] == "installed"
    explained = client.get(f"/privacy/v1/apps/{world['mini']}/explain").get_json()["fields"]
    assert any(row["released"] for row in explained)
    assert client.get("/privacy/v1/apps/app_0000000000000000/explain").status_code == 404
    assert client.get("/privacy/v1/deletion-requests").get_json() == {"deletion_requests": []}

    # the public ledger: anyone can check the records above were not edited
    keys = client.get("/ledger/v1/keys").get_json()["keys"]
    assert keys and all(k["kty"] == "OKP" for k in keys)
    log = log_of(world["member"], store)  # all of the person's records are in one log
    listed = client.get("/ledger/v1/logs").get_json()["logs"]
    assert [x["tree_size"] for x in listed if x["log"] == log] == [3]
    latest = client.get(f"/ledger/v1/logs/{log}/checkpoints/latest").get_json()
    assert latest["tree_size"] == 3
    assert client.get(f"/ledger/v1/logs/{log}/checkpoints?limit=1").get_json()["total"] >= 1
    assert client.get(f"/ledger/v1/logs/{log}/consistency?first=1&second=3").get_json()["consistency_proof"]
    assert client.get(f"/ledger/v1/logs/{log}/leaves/0").get_json()["checkpoint"] == latest
    assert client.get(f"/ledger/v1/logs/{log}/leaves/0?tree_size=2").get_json()["checkpoint"] is None
    assert client.get(f"/ledger/v1/logs/{log}/leaves/9").status_code == 404
    assert client.get(f"/ledger/v1/logs/{log}/consistency?first=3&second=1").status_code == 400
    assert client.get("/ledger/v1/checkpoints/latest").status_code == 404  # the legacy log: none here
    write_legacy_log(store, settings, [record(1), record(2)])  # as an earlier release left it
    assert client.get("/ledger/v1/checkpoints/latest").get_json()["tree_size"] == 2
    assert client.get("/ledger/v1/checkpoints").get_json()["total"] == 1
    assert client.get("/ledger/v1/consistency?first=1&second=2").get_json()["log"] == "legacy"
    assert client.get("/ledger/v1/leaves/1").get_json()["log"] == "legacy"

    scope_url = f"/privacy/v1/apps/{world['mini']}/scopes/profile/revoke"
    narrowed = client.post(scope_url, headers=csrf).get_json()
    assert narrowed["grant"]["scopes"] == ["openid"]
    assert client.post(scope_url, headers=csrf).status_code == 404
    assert client.post(f"/privacy/v1/apps/{world['mini']}/revoke").status_code == 400  # no CSRF token
    assert client.post(f"/privacy/v1/apps/{world['mini']}/revoke", headers=csrf).get_json()["grant"] is None
    # sessions and password (what they do: tests/test_sessions.py)
    other = client.application.test_client()
    session_sign_in(other, world["member"])
    third = client.application.test_client()
    session_sign_in(third, world["member"])
    listed = client.get("/privacy/v1/sessions").get_json()["sessions"]
    assert len(listed) == 3 and sum(s["current"] for s in listed) == 1
    theirs = next(s["id"] for s in listed if not s["current"])
    ended = client.post(f"/privacy/v1/sessions/{theirs}/end", headers=csrf).get_json()
    assert ended == {"ended": 1, "signed_out": False}
    changed = client.post(
        "/privacy/v1/password",
        json={"current_password": "pw-member-12345", "new_password": "pw-member-67890"},
        headers=csrf,
    )
    assert changed.get_json() == {"changed": True, "sessions_ended": 1}
    session_sign_in(other, world["member"])
    everywhere = client.post("/privacy/v1/sessions/end-all", headers=csrf).get_json()
    assert everywhere == {"ended": 2, "signed_out": True}
    assert other.get("/privacy/v1/apps").status_code == 401
    session_sign_in(client, world["member"])
    csrf = _csrf(client, "privacy")
    refused = client.post("/privacy/v1/account/delete", json={"confirm_username": "x"}, headers=csrf)
    assert refused.status_code == 400
    deleted = client.post("/privacy/v1/account/delete", json={"confirm_username": "member"}, headers=csrf)
    assert deleted.get_json()["orgs_left"] == [world["oid"]]
    assert _operations(doc, "privacy") | _operations(doc, "ledger") <= _succeeded(client)


def test_admin_api_responses_match(client: Any, store: Any, settings: Any, world: Any) -> None:
    doc = _doc(client)
    oid, app_id, other = world["oid"], world["org_app"], world["other_app"]
    base = f"/admin/v1/orgs/{oid}"
    org_token = make_token(
        store, settings, app_id, kind="installation", subject=oid,
        grant_id=inst_svc.require_installation(store, app_id, oid)["id"], scopes="org.members.read",
    )  # fmt: skip
    assert client.get(f"/v1/orgs/{oid}/members", headers=bearer(org_token)).status_code == 200
    sequence(store, settings)

    session_sign_in(client, world["member"])
    csrf = _csrf(client, "admin")
    assert client.get(f"{base}/installations").status_code == 403
    asked = client.post(f"{base}/requests", json={"client_id": other, "reason": "rosters"}, headers=csrf)
    assert asked.status_code == 201
    assert client.post(f"{base}/requests", json={"client_id": other}, headers=csrf).status_code == 409
    assert client.get(f"{base}/requests/mine").get_json()["requests"][0]["status"] == "pending"
    assert client.get(f"{base}/app-center").status_code == 200

    session_sign_in(client, world["owner"])
    csrf = _csrf(client, "admin")
    assert client.get(base).get_json()["role"] == "owner"
    assert client.get("/admin/v1/orgs/org_0000000000000000").status_code == 404
    assert client.get(f"{base}/installations").status_code == 200
    assert client.get(f"{base}/installations/{app_id}").get_json()["fields"]
    assert client.get(f"{base}/installations/{app_id}/impact?action=disable").get_json()["change"] == "stop"
    assert client.get(f"{base}/installations/{app_id}/impact?action=jump").status_code == 400
    switched = client.patch(f"{base}/installations/{app_id}", json={"enabled": False}, headers=csrf)
    assert switched.get_json()["enabled"] is False
    pending = client.get(f"{base}/requests?status=pending").get_json()["requests"]
    decided = client.post(
        f"{base}/requests/{pending[0]['id']}/decision", json={"decision": "approve"}, headers=csrf
    )
    assert decided.get_json()["status"] == "approved"
    assert client.delete(f"{base}/installations/{other}", headers=csrf).status_code == 204
    assert client.post(f"{base}/installations", json={"client_id": other}, headers=csrf).status_code == 201
    assert client.post(f"{base}/installations", json={"client_id": other}, headers=csrf).status_code == 409
    assert client.get(f"{base}/roles").status_code == 200
    target = f"{base}/roles/{world['member']}"
    assert (
        client.put(target, json={"permissions": ["apps.manage"]}, headers=csrf).get_json()["role"]
        == "sub_admin"
    )
    assert (
        client.put(
            f"{base}/roles/{world['owner']}", json={"permissions": ["apps.manage"]}, headers=csrf
        ).status_code
        == 409
    )
    assert client.delete(target, headers=csrf).status_code == 204
    assert client.delete(target, headers=csrf).status_code == 404
    assert client.get(f"{base}/installations/{app_id}/explain").get_json()["org_id"] == world["oid"]
    assert client.get(f"{base}/policy").get_json()["allow_member_mini_programs"] is True
    put_policy = client.put(f"{base}/policy", json={"allow_member_mini_programs": False}, headers=csrf)
    assert put_policy.status_code == 200 and put_policy.get_json()["allow_member_mini_programs"] is False
    assert client.put(f"{base}/policy", json={"blocked_apps": ["x"]}, headers=csrf).status_code == 400
    newbie = make_user(store, username="newbie")
    assert client.post(f"{base}/members", json={"username": "newbie"}, headers=csrf).status_code == 201
    assert client.post(f"{base}/members", json={"username": "newbie"}, headers=csrf).status_code == 409
    assert {m["username"] for m in client.get(f"{base}/members").get_json()["members"]} >= {"newbie"}
    assert client.delete(f"{base}/members/{newbie}", headers=csrf).status_code == 204
    assert client.delete(f"{base}/members/{newbie}", headers=csrf).status_code == 404
    eng = client.post(f"{base}/departments", json={"name": "Engineering"}, headers=csrf)
    assert eng.status_code == 201 and eng.headers["Location"] == f"{base}/departments/{eng.get_json()['id']}"
    dep_id = eng.get_json()["id"]
    sub = client.post(f"{base}/departments", json={"name": "Web", "parent": dep_id}, headers=csrf).get_json()
    assert (
        client.patch(f"{base}/departments/{dep_id}", json={"parent": sub["id"]}, headers=csrf).status_code
        == 400
    )
    assert (
        client.patch(f"{base}/departments/{sub['id']}", json={"name": "Frontend"}, headers=csrf).status_code
        == 200
    )
    assert client.get(f"{base}/departments").get_json()["departments"][1]["path"] == "Engineering / Frontend"
    placed = client.put(
        f"{base}/members/{world['member']}/departments", json={"departments": [sub["id"]]}, headers=csrf
    )
    assert placed.get_json()["departments"] == [sub["id"]]
    assert client.get(f"{base}/departments/{sub['id']}").get_json()["members"] == [world["member"]]
    limited = client.put(
        f"{base}/installations/{app_id}/departments", json={"departments": [dep_id]}, headers=csrf
    )
    assert limited.get_json() == {"departments": [dep_id], "covered_members": 1}
    assert client.delete(f"{base}/departments/{dep_id}", headers=csrf).status_code == 409
    assert client.delete(f"{base}/departments/{sub['id']}", headers=csrf).status_code == 204
    assert client.get(f"{base}/disclosures").get_json()["records"]
    assert client.get(f"{base}/disclosures?format=ndjson").status_code == 200
    assert client.get(f"{base}/disclosures?format=csv").status_code == 200
    assert client.get(f"{base}/audit").get_json()["audit"]
    assert client.post(f"{base}/disband", json={"confirm": "nope"}, headers=csrf).status_code == 400
    disbanded = client.post(f"{base}/disband", json={"confirm": "Acme"}, headers=csrf).get_json()
    assert disbanded["disbanded"] is True and sorted(disbanded["removed_installations"]) == sorted(
        [app_id, other]
    )
    assert _operations(doc, "admin") <= _succeeded(client)


def test_developer_api_responses_match(client: Any, store: Any, settings: Any, world: Any) -> None:
    from broker.events import outbox as events
    from broker.storage import keys

    doc = _doc(client)
    app_id = world["org_app"]
    org_token = make_token(
        store, settings, app_id, kind="installation", subject=world["oid"],
        grant_id=inst_svc.require_installation(store, app_id, world["oid"])["id"], scopes="org.members.read",
    )  # fmt: skip
    assert client.get(f"/v1/orgs/{world['oid']}/members", headers=bearer(org_token)).status_code == 200
    sequence(store, settings)
    # one dead-lettered webhook event, as the worker leaves it after its last attempt
    pipe = store.redis.pipeline(transaction=True)
    event_id = events.emit(pipe, app_id, "grant.created", {"user_id": "x"})
    pipe.execute()
    raw = store.redis.xrange(keys.outbox(app_id))[-1][1]["e"]
    doc_dead = {
        "event": raw,
        "attempts": 5,
        "last_status": "503",
        "last_error": "HTTP 503",
        "dead_at": int(time.time()),
    }
    store.redis.hset(keys.webhook_dead(app_id), event_id, json.dumps(doc_dead))
    store.redis.zadd(keys.webhook_dead_index(app_id), {event_id: int(time.time())})

    assert client.get("/developer/v1/apps").status_code == 401
    session_sign_in(client, world["dev"])
    csrf = _csrf(client, "developer")
    assert len(client.get("/developer/v1/apps").get_json()["apps"]) == 3
    detail = client.get(f"/developer/v1/apps/{app_id}").get_json()
    assert detail["disclosures"]["items"] and detail["deliveries"]["dead"][0]["event"]["id"] == event_id
    assert client.get(f"/developer/v1/apps/{app_id}/disclosures").get_json()["records"]
    assert client.get(f"/developer/v1/apps/{app_id}/disclosures?format=ndjson").status_code == 200
    assert client.get("/developer/v1/disclosures?format=csv").status_code == 200
    assert client.get("/developer/v1/disclosures").get_json()["records"]
    redeliver = f"/developer/v1/apps/{app_id}/events/{event_id}/redeliver"
    assert client.post(redeliver, headers=csrf).get_json()["queued"] is True
    assert client.post(redeliver, headers=csrf).status_code == 404
    dead_letters = f"/developer/v1/apps/{app_id}/dead-letters"
    for action, key in (("replay", "replayed"), ("purge", "purged")):
        store.redis.hset(keys.webhook_dead(app_id), event_id, json.dumps(doc_dead))
        store.redis.zadd(keys.webhook_dead_index(app_id), {event_id: int(time.time())})
        done = client.post(f"{dead_letters}/{action}", json={"event_ids": [event_id]}, headers=csrf)
        assert done.get_json()[key] == [event_id]
        assert client.post(f"{dead_letters}/{action}", json={"all": True}, headers=csrf).get_json()[key] == []
    assert client.post(f"/developer/v1/apps/{app_id}/secret", headers=csrf).status_code == 200
    assert client.post(f"/developer/v1/apps/{world['mini']}/secret", headers=csrf).status_code == 409
    assert client.post(f"/developer/v1/apps/{app_id}/webhook-secret", headers=csrf).status_code == 200
    assert client.post(f"/developer/v1/apps/{app_id}/secret/revoke-previous", headers=csrf).status_code == 200
    assert (
        client.post(f"/developer/v1/apps/{world['mini']}/secret/revoke-previous", headers=csrf).status_code
        == 409
    )
    assert (
        client.post(f"/developer/v1/apps/{app_id}/webhook-secret/revoke-previous", headers=csrf).status_code
        == 200
    )
    assert (
        client.patch(f"/developer/v1/apps/{app_id}", json={"name": "Roster 2"}, headers=csrf).status_code
        == 200
    )
    payload = {
        "kind": "mini_program",
        "client_type": "public",
        "name": "Diary",
        "contact": "dev@example.com",
        "privacy_policy_url": "https://diary.example.com/privacy",
        "redirect_uris": ["http://127.0.0.1:8765/cb"],
        "scopes": ["openid"],
    }
    created = client.post("/developer/v1/apps", json=payload, headers=csrf)
    assert created.status_code == 201 and "client_secret" not in created.get_json()
    assert (
        client.post("/developer/v1/apps", json={**payload, "developer_id": "x"}, headers=csrf).status_code
        == 400
    )
    new_id = created.get_json()["client_id"]
    assert client.delete(f"/developer/v1/apps/{new_id}", headers=csrf).status_code == 204
    assert client.get(f"/developer/v1/apps/{new_id}").status_code == 404
    assert _operations(doc, "developer") <= _succeeded(client)


def test_the_contract_is_shared_by_apps_with_the_same_routes(app: Any, settings: Any, store: Any) -> None:
    from broker.app import create_app

    assert contract_for(app) is contract_for(create_app(settings, store))


def test_privacy_api_errors_are_problem_json_even_for_a_browser(
    app: Any, client: Any, store: Any, redis_server: Any, world: Any
) -> None:
    """Fixed: an oversized body and a storage failure on the receipts came back as HTML pages when the
    client preferred HTML, unlike every other privacy API error (and the document)."""
    html = {"Accept": "text/html"}
    session_sign_in(client, world["member"])
    csrf = _csrf(client, "privacy")
    too_big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    refused = client.post(
        "/privacy/v1/account/delete", data=too_big, content_type="application/json", headers={**csrf, **html}
    )
    assert refused.status_code == 413 and refused.mimetype == "application/problem+json"
    redis_server.stop()  # the store fixture starts it again for the next test
    for url in ("/privacy/v1/receipts", "/privacy/v1/receipts/00000000-0000-0000-0000-000000000000"):
        failed = client.get(url, headers=html)
        assert failed.status_code == 503 and failed.mimetype == "application/problem+json"
        assert failed.headers["Retry-After"] == "1"
