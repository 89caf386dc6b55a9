"""OpenAPI 3.1 document of the JSON APIs, built with apispec from the app's url_map and marshmallow schemas.

Paths come from the live url_map so the document cannot drift from the routes; request bodies are the
marshmallow schemas the views themselves load (found in each view's source), responses come from
broker.openapi_schemas.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify, render_template
from marshmallow import Schema

from broker import openapi_schemas as rs

bp = Blueprint("openapi", __name__)

# path prefix -> (tag, security requirement list)
AREAS: tuple[tuple[str, str, list[dict[str, list[str]]]], ...] = (
    ("/v1/", "data", [{"bearer": []}]),
    ("/oauth/userinfo", "data", [{"bearer": []}]),
    ("/oauth/", "oauth", [{"clientSecretBasic": []}]),
    ("/.well-known/", "oauth", []),
    ("/ledger/v1/", "ledger", [{"bearer": []}, {"session": [], "csrf": []}]),
    ("/privacy/v1/", "privacy", [{"session": [], "csrf": []}]),
    ("/admin/v1/", "admin", [{"session": [], "csrf": []}]),
    ("/developer/v1/", "developer", [{"session": [], "csrf": []}]),
    ("/internal/v1/", "platform", [{"platformKey": []}]),
)
_PUBLIC = {"/oauth/jwks", "/oauth/authorize"}
_SCHEMA_CALL = re.compile(r"\b((?:\w+\.)?\w*Schema)\(\)")
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def documented_rules(app: Flask) -> list[tuple[str, str, str, str]]:
    """(path, method, endpoint, tag) for every JSON API rule, HEAD/OPTIONS left out."""
    out = []
    for rule in app.url_map.iter_rules():
        area = next((a for a in AREAS if rule.rule.startswith(a[0])), None)
        if area is None:
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((path, method.lower(), rule.endpoint, area[1]))
    return sorted(out)


def _request_schema(view: Any) -> type[Schema] | None:
    """The marshmallow schema a view loads its body with, read from its own source.

    Views that load through a module helper (the developer console's _register/_update) name the
    schema in that helper instead, so the helper's source is read too.
    """
    from broker.developer import views as developer_views

    helpers = {"api_create": developer_views._register, "api_update": developer_views._update}
    view = (
        helpers.get(getattr(inspect.unwrap(view), "__name__", ""), view)
        if view.__module__ == developer_views.__name__
        else view
    )
    view = inspect.unwrap(view)  # auth decorators wrap the view; its source and globals are inside
    try:
        source = inspect.getsource(view)
    except (OSError, TypeError):
        return None
    for match in _SCHEMA_CALL.finditer(source):
        obj: Any = view.__globals__
        for part in match.group(1).split("."):
            obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, type) and issubclass(obj, Schema) and not obj.__name__.startswith("_"):
            return obj
    return None


def _component_name(schema: type[Schema]) -> str:
    """Area-prefixed name (AdminInstall, InternalInstall): equal class names never clash."""
    parts = schema.__module__.split(".")[1:]
    segment = parts[-1] if parts[0] == "services" else parts[0]
    return f"{segment.split('_')[0].capitalize()}{schema.__name__.removesuffix('Schema')}"


def build_spec(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="broker",
        version="0.1.0",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "Consent-limited data-sharing broker: OAuth 2.0 / OIDC and its JSON APIs."},
    )
    spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "description": "access token"}
    )
    spec.components.security_scheme(
        "platformKey", {"type": "http", "scheme": "bearer", "description": "platform API key"}
    )
    spec.components.security_scheme("session", {"type": "apiKey", "in": "cookie", "name": "session"})
    spec.components.security_scheme("csrf", {"type": "apiKey", "in": "header", "name": "X-CSRFToken"})
    spec.components.security_scheme("clientSecretBasic", {"type": "http", "scheme": "basic"})
    for name, schema in rs.RESPONSE_SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    seen: dict[type[Schema], str] = {}
    for tag in dict.fromkeys(a[1] for a in AREAS):
        spec.tag({"name": tag})

    paths: dict[str, dict[str, Any]] = {}
    for path, method, endpoint, tag in documented_rules(app):
        view = app.view_functions[endpoint]
        area = next(a for a in AREAS if path.startswith(a[0]))
        error_ref = "OAuthError" if tag == "oauth" else "Problem"
        ok = rs.ENDPOINT_RESPONSES.get(endpoint, "GenericObject")
        op: dict[str, Any] = {
            "tags": [tag],
            "operationId": method + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_"),
            "summary": (inspect.getdoc(view) or endpoint).splitlines()[0],
            "security": [] if path in _PUBLIC or path.startswith("/.well-known") else area[2],
            "responses": {
                "200": {
                    "description": "success",
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ok}"}}},
                },
                "4XX": {
                    "description": "client error",
                    "content": {
                        "application/problem+json": {"schema": {"$ref": f"#/components/schemas/{error_ref}"}}
                    },
                },
            },
        }
        params = re.findall(r"{(\w+)}", path)
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
            ]
        if method in {"post", "put", "patch"}:
            body_schema = _request_schema(view)
            if body_schema is not None:
                name = seen.setdefault(body_schema, _component_name(body_schema))
                if name not in spec.components.schemas:
                    spec.components.schema(name, schema=body_schema)
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
                }
            elif path == "/internal/v1/import":
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                }
            elif tag == "oauth":
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
                }
        paths.setdefault(path, {})[method] = op
    for path, ops in paths.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi_json() -> Any:
    """The OpenAPI 3.1 document (built once per app)."""
    doc = current_app.extensions.get("openapi_doc")
    if doc is None:
        doc = current_app.extensions["openapi_doc"] = build_spec(current_app)
    return jsonify(doc)


@bp.get("/docs")
def docs() -> Any:
    """Server-rendered API reference: no JavaScript, no CDN, fits the page CSP."""
    doc = current_app.extensions.get("openapi_doc") or build_spec(current_app)
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            groups.setdefault(op["tags"][0], []).append({"path": path, "method": method.upper(), **op})
    return render_template("openapi_docs.html", doc=doc, groups=groups)
