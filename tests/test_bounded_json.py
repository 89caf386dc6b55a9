"""Bounded parsing (issue 15 item 3): every route that takes a body answers a deeply nested JSON body
with 400 naming the limit and an oversized body with 413, never a RecursionError or a 500."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import requests
from werkzeug.routing import Rule

from broker.config import Settings
from broker.directory import service as directory
from broker.storage import keys
from broker.web.shared.openapi import openapi_path
from tests.support.client import basic, bearer
from tests.support.factories import make_app, make_grant, make_installation, make_org, make_token, make_user
from tests.support.signin import session_sign_in

DEEP = b"[" * 1000 + b"]" * 1000
WRITES = {"POST", "PUT", "PATCH"}


def _writes(app: Any) -> list[tuple[Rule, str]]:
    return sorted(
        ((rule, method) for rule in app.url_map.iter_rules() for method in (rule.methods or set()) & WRITES),
        key=lambda pair: (pair[0].rule, pair[1]),
    )


def _operation(doc: dict[str, Any], rule: Rule, method: str) -> dict[str, Any]:
    op: dict[str, Any] = doc["paths"].get(openapi_path(rule.rule), {}).get(method.lower(), {})
    return op


@pytest.fixture
def world(app: Any, client: Any, store: Any, settings: Settings) -> dict[str, Any]:
    """A signed-in person who administers an org and develops an installed app with a token."""
    uid = make_user(store, "ada", "pw-ada-12345")
    oid = make_org(store, members=[uid])
    directory.set_role(store, oid, uid, "owner")
    client_id, secret = make_app(
        store, settings, developer_id=uid, kind="org_app", scopes="org.members.read", redirect_uris=[]
    )
    make_installation(store, client_id, oid)
    mini_id, _ = make_app(store, settings, developer_id=uid)
    grant = make_grant(store, settings, mini_id, uid, "openid profile", "nickname")
    token = make_token(
        store, settings, mini_id, kind="grant", subject=uid, grant_id=grant, scopes="openid profile"
    )
    session_sign_in(client, uid)
    csrf = client.get("/privacy/v1/csrf-token").get_json()["csrf_token"]
    values = {
        "oid": oid,
        "org_id": oid,
        "uid": uid,
        "target": uid,
        "client_id": client_id,
        "scope": "profile",
        "action": "disable",
        "decision": "approve",
    }
    return {
        "values": values,
        "csrf": csrf,
        "platform": {"Authorization": f"Bearer {settings.platform_api_key}"},
        "bearer": bearer(token),
        "basic": basic(client_id, secret or ""),
    }


def _url(rule: Rule, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values.get(m.group(1), "x0"), rule.rule)


def _credentials(op: dict[str, Any], world: dict[str, Any]) -> dict[str, str]:
    """What the route's security scheme asks for (session routes and pages: cookie + CSRF header)."""
    schemes = {name for requirement in op.get("security", []) for name in requirement}
    headers = {"X-CSRFToken": world["csrf"]}
    if "platformKey" in schemes:
        headers.update(world["platform"])
    elif "bearer" in schemes:
        headers.update(world["bearer"])
    elif "clientSecretBasic" in schemes:
        headers.update(world["basic"])
    return headers


def _json_body(op: dict[str, Any]) -> str | None:
    """The JSON type the operation's request body is documented with (NDJSON for the import)."""
    content = set((op.get("requestBody") or {}).get("content", {}))
    for body_type in ("application/json", "application/x-ndjson"):
        if body_type in content:
            return body_type
    return None


def test_every_json_route_refuses_a_deeply_nested_body_with_400(
    app: Any, client: Any, world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    doc = client.get("/openapi.json").get_json()
    json_routes = [(rule, m) for rule, m in _writes(app) if _json_body(_operation(doc, rule, m))]
    # Every operation of the document that takes JSON is among them (none is left out by a list).
    documented = {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and _json_body(op)
    }
    assert documented == {(openapi_path(rule.rule), m) for rule, m in json_routes}
    assert len(json_routes) >= 19
    anonymous = app.test_client()
    for rule, method in json_routes:
        op = _operation(doc, rule, method)
        url, body_type = _url(rule, world["values"]), _json_body(op)
        # Without credentials: the limit, or the route's own refusal ...
        bare = anonymous.open(url, method=method, data=DEEP, content_type=body_type)
        assert bare.status_code in {400, 401, 403}, (method, url, bare.status_code)
        if bare.status_code == 400:  # the limit, or the CSRF check of the session APIs
            detail = bare.get_json()["detail"]
            assert detail == "JSON nested deeper than 32" or "CSRF" in detail, (method, url, detail)
        # ... and with the credentials the route asks for: the limit, named.
        response = client.open(
            url, method=method, data=DEEP, content_type=body_type, headers=_credentials(op, world)
        )
        assert response.status_code == 400, (method, url, response.status_code, response.get_data()[:300])
        assert "JSON nested deeper than 32" in response.get_data(as_text=True), (method, url)
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_no_write_route_fails_on_a_deeply_nested_json_body(
    app: Any, client: Any, world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The routes without a JSON body (forms, protocol endpoints, bodiless actions) are not broken
    by one either: whatever they answer, it is not a 5xx and nothing is logged as a failure."""
    app.config["WTF_CSRF_ENABLED"] = True
    doc = client.get("/openapi.json").get_json()
    others = [(rule, m) for rule, m in _writes(app) if not _json_body(_operation(doc, rule, m))]
    assert others
    for rule, method in others:
        op = _operation(doc, rule, method)
        response = client.open(
            _url(rule, world["values"]),
            method=method,
            data=DEEP,
            content_type="application/json",
            headers=_credentials(op, world),
        )
        assert response.status_code < 500, (method, rule.rule, response.status_code)
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_json_routes_parse_what_is_within_the_limit_and_name_parse_failures(
    client: Any, store: Any, settings: Settings
) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    # 32 levels is within the limit: the body parses, and the schema names the bad field.
    nested = "[" * 31 + "1" + "]" * 31
    within = client.post(
        "/internal/v1/users",
        data=f'{{"username": "x", "nickname": {nested}}}',
        content_type="application/json",
        headers=auth,
    )
    assert within.status_code == 400
    assert "nested deeper" not in within.get_data(as_text=True)
    assert "nickname" in within.get_json()["errors"]
    deeper = "[" * 32 + "1" + "]" * 32
    over = client.post(
        "/internal/v1/users",
        data=f'{{"username": "x", "nickname": {deeper}}}',
        content_type="application/json",
        headers=auth,
    )
    assert over.status_code == 400
    assert over.get_json()["detail"] == "JSON nested deeper than 32"
    # Brackets inside strings are text, not nesting.
    text = client.post(
        "/internal/v1/users",
        json={"username": "bracketed", "nickname": "[" * 1000},
        headers=auth,
    )
    assert text.status_code != 500 and "nested deeper" not in text.get_data(as_text=True)
    broken = client.post(
        "/internal/v1/users", data='{"username": "x",', content_type="application/json", headers=auth
    )
    assert broken.status_code == 400
    assert broken.get_json()["detail"].startswith("the body is not valid JSON: Expecting")


def test_ndjson_import_names_each_line_nested_too_deep(client: Any, settings: Settings) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    body = b'{"type": "org", "id": "o1", "name": "Acme"}\n' + b'{"type": "user", "x": ' + DEEP + b"}\n"
    response = client.post(
        "/internal/v1/import", data=body, content_type="application/x-ndjson", headers=auth
    )
    assert response.status_code == 400
    problem = response.get_json()
    assert problem["errors"] == {"2": {"_line": ["JSON nested deeper than 32"]}}
    assert "nothing was imported" in problem["detail"]


def test_the_depth_limit_is_a_setting(app: Any, client: Any, settings: Settings) -> None:
    from dataclasses import replace

    app.extensions["broker.settings"] = replace(settings, max_json_depth=4)
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    response = client.post("/internal/v1/orgs", json={"name": [[[[["x"]]]]]}, headers=auth)
    assert response.status_code == 400 and response.get_json()["detail"] == "JSON nested deeper than 4"


def test_an_oversized_body_answers_413_before_parsing(
    client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    big = b'{"name": "' + b"a" * settings.max_body_bytes + b'"}'
    response = client.post("/internal/v1/orgs", data=big, content_type="application/json", headers=auth)
    assert response.status_code == 413
    assert response.get_json()["detail"] == f"The request body is larger than {settings.max_body_bytes} bytes"
    assert "Traceback" not in caplog.text


def test_an_oversized_chunked_body_answers_413_over_http(live_server: Any) -> None:
    """Without a Content-Length (chunked), the limit still holds while the body is read."""
    settings = live_server.app.extensions["broker.settings"]
    auth = {"Authorization": f"Bearer {settings.platform_api_key}", "Content-Type": "application/json"}
    chunk = b"[" * 65536

    def body() -> Any:
        for _ in range(settings.max_body_bytes // len(chunk) + 2):
            yield chunk

    response = requests.post(f"{live_server.url}/internal/v1/orgs", data=body(), headers=auth, timeout=30)
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == f"The request body is larger than {settings.max_body_bytes} bytes"


def test_cli_import_names_a_line_nested_too_deeply(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, redis_server: Any, store: Any, capsys: Any
) -> None:
    """``broker directory import`` reads the same NDJSON from a file: a deep line is named, no crash."""
    import os

    from broker.cli import main

    for name in [k for k in os.environ if k.startswith("BROKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BROKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BROKER_REDIS_URL", redis_server.url)
    path = tmp_path / "deep.ndjson"
    path.write_bytes(b'{"type": "user", "username": "ok-user"}\n{"type": "user", "x": ' + DEEP * 3 + b"}\n")
    assert main(["directory", "import", str(path)]) == 1
    _, err = capsys.readouterr()
    assert "line 2: _line: JSON nested too deeply" in err
    assert "Traceback" not in err
    assert [
        k for k in store.redis.scan_iter(count=1000) if k != keys.schema_version()
    ] == []  # nothing imported
