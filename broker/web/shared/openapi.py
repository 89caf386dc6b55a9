"""OpenAPI 3.1 document of the JSON APIs, built with apispec from the url_map and marshmallow schemas.

Paths come from the live url_map, so a route cannot be left out. What each operation takes and
answers is declared next to its view with :func:`documented`: the request body and query schemas
(the very schemas the view loads, where it loads one), the response schema
(broker.web.shared.openapi_schemas), the success status, other content types of the same response
(NDJSON, CSV, JWS) and the error statuses the view produces. A view without that metadata shows up
in the document as undocumented, which the tests refuse.

``documented`` also serializes (flask-smorest's ``@blp.response``, in the shape this code already
had): a view returns plain data (``body``, ``(body, status)`` or ``(body, status, headers)``) and
the decorator dumps it through the schema documented for that status (:func:`serialize`), so what
goes out is the documented schema's dump: a member the schema does not name cannot leave, a missing
required member, a ``null`` where none is allowed or a value of the wrong type is refused
(:class:`UndocumentedResponse`, a 500), and a status the view does not document is refused too.

A view may still return a ready ``Response``; it goes out as it is. Those are the exceptions, whose
bodies are not JSON documented by a schema, or are built by someone else:

- the OAuth protocol endpoints whose bodies Authlib builds (token, introspection, revocation);
  the discovery and JWKS documents are answered with CORS headers by ``_public_json``, but their
  bodies are still :func:`dump` of DiscoverySchema and JwksSchema (broker.web.oauth.api);
- streaming and non-JSON bodies: NDJSON and CSV exports (``?format=ndjson|csv``), compact JWS
  (JOSE) answers, 204 answers without a body;
- the data API's catalog-built schemas (a ``str`` component name), which the gate already
  serializes (``schema_for``).
"""

from __future__ import annotations

import functools
import inspect
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify, render_template
from marshmallow import Schema, fields
from werkzeug.routing import IntegerConverter
from werkzeug.wrappers import Response as BaseResponse

from broker.web.shared import openapi_schemas as rs

bp = Blueprint("openapi", __name__)

F = TypeVar("F", bound=Callable[..., Any])
SchemaRef = type[Schema] | Schema | str  # a str names a component (the catalog-built data schemas)

Body = dict[str, Any] | list[Any]
Reply = Body | tuple[Body, int] | tuple[Body, int, Mapping[str, str]] | BaseResponse
"""What a :func:`documented` view returns: plain data (serialized by the decorator) or a Response."""

Security = list[dict[str, list[str]]]
SESSION: Security = [{"session": []}]
SESSION_WRITE: Security = [{"session": [], "csrf": []}]
# path prefix -> (tag, default security requirements)
AREAS: tuple[tuple[str, str, list[dict[str, list[str]]]], ...] = (
    ("/v1/", "data", [{"bearer": []}]),
    ("/oauth/userinfo", "data", [{"bearer": []}]),
    ("/oauth/", "oauth", [{"clientSecretBasic": []}]),
    ("/.well-known/", "oauth", []),
    ("/ledger/v1/", "ledger", []),
    ("/privacy/v1/", "privacy", SESSION),
    ("/admin/v1/", "admin", SESSION),
    ("/developer/v1/", "developer", SESSION),
    ("/internal/v1/", "platform", [{"platformKey": []}]),
)
_REDIRECTS = (301, 302, 303, 307, 308)
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    302: "Found: the answer is a redirect (see Location)",
    400: "Invalid request: `errors` names each bad field",
    401: "Authentication required or failed",
    403: "Authenticated, but not allowed",
    404: "Not found (or not visible to the caller)",
    409: "Conflict with the current state",
    413: "Request body too large",
    415: "Unsupported content type",
    500: "The server failed (the body carries a request id)",
    503: "Storage unavailable: retry after the Retry-After seconds",
}

PATH_PARAMS = {
    "client_id": "an app's client id (app_...)",
    "oid": "an organization id (org_...)",
    "org_id": "an organization id (org_...)",
    "uid": "a user id (usr_...)",
    "target": "a member's user id (usr_...)",
    "user_id": "the member's pairwise user id, as this app was given it",
    "username": "a username",
    "request_id": "an app request id (rq_...)",
    "event_id": "a webhook event id (evt_...)",
    "receipt_id": "a consent receipt id (UUID)",
    "scope": "a scope name",
    "index": "a leaf index",
}


@dataclass(frozen=True)
class Lines:
    """An NDJSON body: one JSON value per line, each matching ``schema``."""

    schema: SchemaRef


class Text:
    """A body that is plain text for the client (CSV, a compact JWS, an HTML page)."""


TEXT = Text()
Content = SchemaRef | Lines | Text | None


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from the success answer to another operation: ``parameters`` maps that
    operation's parameters to runtime expressions (``$response.body#/id``, ``$request.path.oid``)."""

    method: str
    path: str  # the OpenAPI path template of the target operation
    parameters: Mapping[str, str]


def operation_id(method: str, path: str) -> str:
    """The ``operationId`` of an operation: ``get_internal_v1_users_uid`` for GET /internal/v1/users/{uid}."""
    return method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_")


def links_to(path: str, parameters: Mapping[str, str], **methods: str) -> dict[str, Link]:
    """Links to the operations on one resource, by name: ``links_to("/users/{uid}",
    {"uid": "$response.body#/id"}, GetUser="get", DeleteUser="delete")``."""
    return {name: Link(method, path, parameters) for name, method in methods.items()}


@dataclass(frozen=True)
class Operation:
    """What :func:`documented` attaches to a view."""

    response: Content = None
    status: int = 200
    media: Mapping[str, Content] = field(default_factory=dict)
    body: Content = None
    body_type: str = "application/json"
    checks_type: bool = True
    query: SchemaRef | None = None
    errors: Mapping[int, str] = field(default_factory=dict)
    responses: Mapping[int, tuple[str, Mapping[str, Content]]] = field(default_factory=dict)
    security: list[dict[str, list[str]]] | None = None
    location: bool = False
    summary: str | None = None
    links: Mapping[str, Link] = field(default_factory=dict)


def documented(
    response: Content = None,
    *,
    status: int = 200,
    media: Mapping[str, Content] | None = None,
    body: Content = None,
    body_type: str = "application/json",
    checks_type: bool = True,
    query: SchemaRef | None = None,
    errors: Iterable[int] | Mapping[int, str] = (),
    responses: Mapping[int, tuple[str, Mapping[str, Content]]] | None = None,
    security: list[dict[str, list[str]]] | None = None,
    location: bool = False,
    summary: str | None = None,
    links: Mapping[str, Link] | None = None,
) -> Callable[[F], F]:
    """Declare a view's API contract for the OpenAPI document, and serialize what the view returns.

    ``response`` is the JSON body of the success answer (``status``; None: no body), ``media`` other
    content types of that same answer (``?format=ndjson|csv``), ``body``/``query`` the schemas the
    view loads (``checks_type=False``: the view does not answer 415 for another content type),
    ``errors`` the error statuses it produces (each with a Problem body; a mapping gives
    each its own description) on top of those every operation of the area has, ``responses`` other
    answers as ``{status: (description, {content type: content})}``, ``location`` that a 201 names
    the new resource in ``Location``.

    When the view returns plain data (a dict or list, alone or as ``(body, status)`` or
    ``(body, status, headers)``), it is dumped through the schema documented for that status
    (:func:`serialize`); a ``Response`` goes out as it is (the exceptions in the module docstring).
    ``links`` are OpenAPI links from the success answer to the operations on what it names
    (:func:`links_to`), which stateful clients and tests follow; each must name a documented
    operation.
    """
    errs = (
        dict(errors)
        if isinstance(errors, Mapping)
        else {code: STATUS_TEXT.get(code, f"HTTP {code}") for code in errors}
    )
    op = Operation(
        response=response,
        status=status,
        media=dict(media or {}),
        body=body,
        body_type=body_type,
        checks_type=checks_type,
        query=query,
        errors=errs,
        responses=dict(responses or {}),
        security=security,
        location=location,
        summary=summary,
        links=dict(links or {}),
    )

    def attach(view: F) -> F:
        @functools.wraps(view)
        def serializing(*args: Any, **kwargs: Any) -> Any:
            return serialize(op, view(*args, **kwargs))

        serializing.__openapi__ = op  # type: ignore[attr-defined]
        return serializing  # type: ignore[return-value]

    return attach


class UndocumentedResponse(RuntimeError):
    """A view answered something its documentation does not allow (a bug: the answer is a 500)."""


def schema_for_status(op: Operation, status: int) -> Content:
    """The JSON content documented for ``status`` (None: no JSON body is documented for it)."""
    if status == op.status:
        return op.response
    if status in op.responses:
        return op.responses[status][1].get("application/json")
    raise UndocumentedResponse(f"status {status} is not documented (documented: {op.status})")


@functools.cache
def _instance(cls: type[Schema]) -> Schema:
    return cls()


def dump(schema: type[Schema] | Schema, body: Any) -> Any:
    """``body`` as ``schema`` dumps it (``many`` for a list), refused unless it already fits: every
    required member present, no ``null`` where none is allowed, every value of its type. Members the
    schema does not name are dropped."""
    inst = _instance(schema) if isinstance(schema, type) else schema
    many = isinstance(body, list)
    problems = inst.validate(body, many=many)
    if problems:
        raise UndocumentedResponse(f"the body does not fit {type(inst).__name__}: {problems}")
    wrong = _mistyped(inst, body, many)
    if wrong is not None:  # loading accepts "5" for an integer, "true" for a boolean; JSON may not
        raise UndocumentedResponse(f"the body does not fit {type(inst).__name__}: {wrong}")
    return inst.dump(body, many=many)


_JSON_TYPES: tuple[tuple[type[fields.Field], tuple[type, ...]], ...] = (
    (fields.Boolean, (bool,)),
    (fields.Integer, (int,)),
    (fields.Number, (int, float)),
    (fields.String, (str,)),
    (fields.List, (list,)),
    (fields.Dict, (dict,)),
)


def _mistyped(schema: Schema, value: Any, many: bool = False, at: str = "") -> str | None:
    """Where ``value`` holds a JSON value of another type than its field (None: nowhere)."""
    if many:
        if not isinstance(value, list):
            return f"{at or '/'} is not a list"
        items = (_mistyped(schema, v, False, f"{at}/{i}") for i, v in enumerate(value))
        return next((x for x in items if x is not None), None)
    if not isinstance(value, dict):
        return f"{at or '/'} is not an object"
    for name, fld in schema.dump_fields.items():
        key = fld.data_key or name
        if key in value:
            found = _field_mistyped(fld, value[key], f"{at}/{key}")
            if found is not None:
                return found
    return None


def _field_mistyped(fld: fields.Field, value: Any, at: str) -> str | None:
    if value is None:
        return None  # whether null is allowed, validation said
    if isinstance(fld, fields.Nested):
        return _mistyped(fld.schema, value, bool(fld.many), at)
    for kind, types in _JSON_TYPES:
        if isinstance(fld, kind) and (
            isinstance(value, bool) != (bool in types) or not isinstance(value, types)
        ):
            return f"{at} is {type(value).__name__}, not {kind.__name__}"
    if isinstance(fld, fields.List) and fld.inner is not None:
        items = (_field_mistyped(fld.inner, v, f"{at}/{i}") for i, v in enumerate(value))
        return next((x for x in items if x is not None), None)
    if isinstance(fld, fields.Dict) and fld.value_field is not None:
        items = (_field_mistyped(fld.value_field, v, f"{at}/{k}") for k, v in value.items())
        return next((x for x in items if x is not None), None)
    return None


def serialize(op: Operation, returned: Any) -> Any:
    """What a :func:`documented` view returned, as the response the documentation says it is."""
    if isinstance(returned, BaseResponse):
        return returned
    body, status, headers = returned, op.status, None
    if isinstance(returned, tuple):
        body, status, *rest = returned
        headers = rest[0] if rest else None
    if not isinstance(body, dict | list):
        return returned  # a string or bytes body: Flask makes the response
    schema = schema_for_status(op, status)
    if isinstance(schema, str):
        data = body  # a catalog-built data schema: the gate serialized it already
    elif isinstance(schema, type | Schema):
        data = dump(schema, body)
    else:
        raise UndocumentedResponse(f"no JSON body is documented for status {status}")
    response = current_app.json.response(data)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


def operation_of(view: Any) -> Operation | None:
    """The metadata of a view, looking through decorators that wrap it (functools.wraps)."""
    while view is not None:
        found = getattr(view, "__openapi__", None)
        if isinstance(found, Operation):
            return found
        view = getattr(view, "__wrapped__", None)
    return None


def documented_rules(app: Flask) -> list[tuple[str, str, str, str]]:
    """(path, method, endpoint, tag) for every JSON API rule, HEAD/OPTIONS left out."""
    out = []
    for rule in app.url_map.iter_rules():
        area = _area(rule.rule)
        if area is None:
            continue
        path = openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((path, method.lower(), rule.endpoint, area[1]))
    return sorted(out)


def openapi_path(rule: str) -> str:
    """``/orgs/<oid>/x/<int:index>`` -> ``/orgs/{oid}/x/{index}``."""
    return _CONVERTER.sub(r"{\1}", rule)


def _area(path: str) -> tuple[str, str, list[dict[str, list[str]]]] | None:
    return next((a for a in AREAS if path.startswith(a[0])), None)


# -- building the document -------------------------------------------------------------------------

_AREA_PREFIX = {"admin": "Admin", "platform": "Platform", "developer": "Developer", "privacy": "Privacy"}


def _component_name(schema: type[Schema] | Schema) -> str:
    """Request schemas: shared ones (domain packages) by class name, an area's own with the area as
    prefix (AdminInstall, PlatformInstall); a schema with fields excluded says which."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__.removesuffix("Schema").lstrip("_")
    parts = cls.__module__.split(".")
    if len(parts) > 2 and parts[:2] == ["broker", "web"]:
        name = _AREA_PREFIX.get(parts[2], "") + name
    excluded = sorted(getattr(schema, "exclude", ()) or ()) if not isinstance(schema, type) else []
    if excluded:
        name += "Without" + "".join(word.capitalize() for x in excluded for word in x.split("_"))
    return name


def _registry(app: Flask) -> dict[type[Schema], str]:
    """Every response schema class and its component name (the data ones built from the catalog)."""
    found: dict[type[Schema], str] = {}
    for obj in vars(rs).values():
        if isinstance(obj, type) and issubclass(obj, rs._Body) and obj is not rs._Body:
            found[obj] = obj.__name__.removesuffix("Schema")
    for name, cls in rs.data_schemas(app.extensions["broker.catalog"]).items():
        found[cls] = name
    return found


class _Builder:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.names = _registry(app)
        self.by_name = {name: cls for cls, name in self.names.items()}
        self.described: dict[str, type[Schema]] = {}  # component name -> the class it was built from
        self.plugin = MarshmallowPlugin(schema_name_resolver=self._resolve_name)
        self.spec = APISpec(
            title="broker",
            version="0.1.0",
            openapi_version="3.1.0",
            plugins=[self.plugin],
            info={
                "description": "Consent-limited data-sharing broker: OAuth 2.0 / OIDC and its JSON APIs. "
                "Objects may gain members: clients must ignore members they do not know."
            },
        )

    def _resolve_name(self, schema: type[Schema] | Schema) -> str:
        cls = schema if isinstance(schema, type) else type(schema)
        if cls in self.names and (isinstance(schema, type) or not getattr(schema, "exclude", None)):
            return self.names[cls]
        return _component_name(schema)

    def ref(self, schema: SchemaRef) -> dict[str, Any]:
        if isinstance(schema, str):
            self.ref(self.by_name[schema])
            return {"$ref": f"#/components/schemas/{schema}"}
        assert self.plugin.converter is not None
        found: dict[str, Any] = self.plugin.converter.resolve_nested_schema(schema)
        cls = schema if isinstance(schema, type) else type(schema)
        self.described.setdefault(found["$ref"].rsplit("/", 1)[-1], cls)
        return found

    def content(self, content: Mapping[str, Content]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for mimetype, item in content.items():
            if item is None or isinstance(item, Text):
                out[mimetype] = {"schema": {"type": "string"}}
            elif isinstance(item, Lines):
                out[mimetype] = {
                    "schema": {"type": "string", "description": "one JSON object per line"},
                    "x-itemSchema": self.ref(item.schema),  # what OpenAPI 3.2 calls itemSchema
                }
            else:
                out[mimetype] = {"schema": self.ref(item)}
        return out

    def build(self) -> dict[str, Any]:
        spec = self.spec
        spec.components.security_scheme(
            "bearer", {"type": "http", "scheme": "bearer", "description": "access token"}
        )
        spec.components.security_scheme(
            "platformKey", {"type": "http", "scheme": "bearer", "description": "platform API key"}
        )
        spec.components.security_scheme(
            "session", {"type": "apiKey", "in": "cookie", "name": "broker_session"}
        )
        spec.components.security_scheme(
            "csrf",
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-CSRFToken",
                "description": "GET <area>/v1/csrf-token",
            },
        )
        spec.components.security_scheme("clientSecretBasic", {"type": "http", "scheme": "basic"})
        for cls, name in sorted(self.names.items(), key=lambda item: item[1]):
            if name not in spec.components.schemas:
                spec.components.schema(name, schema=cls)
        for tag in dict.fromkeys(a[1] for a in AREAS):
            spec.tag({"name": tag})

        paths: dict[str, dict[str, Any]] = {}
        rules = {openapi_path(r.rule): r for r in self.app.url_map.iter_rules()}
        for path, method, endpoint, tag in documented_rules(self.app):
            view = self.app.view_functions[endpoint]
            paths.setdefault(path, {})[method] = self.operation(path, method, tag, view, rules[path])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # two schemas resolving to one component name is a bug
            for path, ops in paths.items():
                spec.path(path=path, operations=ops)
        doc = spec.to_dict()
        known = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
        for ops in doc["paths"].values():
            for op in ops.values():
                for answer in op["responses"].values():
                    for name, link in answer.get("links", {}).items():
                        if link["operationId"] not in known:
                            raise ValueError(f"{op['operationId']}: link {name} names no operation")
        for name, cls in {**self.described, **self.by_name}.items():
            own = cls.__dict__.get("__doc__")  # not one inherited from a base class
            if own and name in doc["components"]["schemas"]:
                text = inspect.cleandoc(own).replace("``", "`")
                doc["components"]["schemas"][name].setdefault("description", text)
        return doc

    def operation(self, path: str, method: str, tag: str, view: Any, rule: Any) -> dict[str, Any]:
        meta = operation_of(view)
        text = (inspect.getdoc(view) or "").replace("``", "`")
        sentence = _first_clause(" ".join(text.split("\n\n")[0].split()))
        summary = (meta.summary if meta else None) or sentence or view.__name__.replace("_", " ")
        op: dict[str, Any] = {
            "tags": [tag],
            "operationId": operation_id(method, path),
            "summary": summary,
        }
        if text and " ".join(text.split()).rstrip(".") != summary:
            op["description"] = text
        area = _area(path)
        assert area is not None
        security = meta.security if meta and meta.security is not None else area[2]
        if security is SESSION and method != "get":
            security = SESSION_WRITE
        op["security"] = security
        parameters = self.path_parameters(path, rule)
        if meta and meta.query is not None:
            parameters.append({"in": "query", "schema": meta.query})
        if parameters:
            op["parameters"] = parameters
        if meta is None:
            op["x-undocumented"] = True
            op["responses"] = {"default": {"description": "not documented"}}
            return op
        if meta.body is not None:
            op["requestBody"] = {"required": True, "content": self.content({meta.body_type: meta.body})}
        op["responses"] = self.responses(meta, tag, method, security)
        return op

    def path_parameters(self, path: str, rule: Any) -> list[dict[str, Any]]:
        out = []
        for name in re.findall(r"{(\w+)}", path):
            converter = rule._converters.get(name)
            schema: dict[str, Any] = (
                {"type": "integer", "minimum": 0}
                if isinstance(converter, IntegerConverter)
                else {"type": "string"}
            )
            param = {"name": name, "in": "path", "required": True, "schema": schema}
            if name in PATH_PARAMS:
                param["description"] = PATH_PARAMS[name]
            out.append(param)
        return out

    def responses(
        self, meta: Operation, tag: str, method: str, security: list[dict[str, list[str]]]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        success: dict[str, Content] = {}
        if meta.response is not None:
            success["application/json"] = meta.response
        success.update(meta.media)
        ok: dict[str, Any] = {"description": STATUS_TEXT.get(meta.status, "success")}
        if success:
            ok["content"] = self.content(success)
        if meta.location or meta.status in _REDIRECTS:
            ok["headers"] = {"Location": {"description": "the new resource", "schema": {"type": "string"}}}
        if meta.links:
            ok["links"] = {
                name: {
                    "operationId": operation_id(link.method, link.path),
                    "parameters": dict(link.parameters),
                }
                for name, link in sorted(meta.links.items())
            }
        out[str(meta.status)] = ok
        errors = dict(self.area_errors(meta, tag, method, security))
        errors.update(meta.errors)
        protocol = tag == "oauth" and method == "post"
        for code, description in sorted(errors.items()):
            if protocol and code != 503:
                media = {"application/json": self.ref(rs.OAuthErrorSchema)}
            else:
                media = {"application/problem+json": self.ref(rs.ProblemSchema)}
            out[str(code)] = {
                "description": description,
                "content": {k: {"schema": v} for k, v in media.items()},
            }
        for code, (description, content) in sorted(meta.responses.items()):
            entry: dict[str, Any] = {"description": description}
            if content:
                entry["content"] = self.content(content)
            if code in _REDIRECTS:
                entry["headers"] = {"Location": {"description": "where to go", "schema": {"type": "string"}}}
            out[str(code)] = entry
        return out

    @staticmethod
    def area_errors(
        meta: Operation, tag: str, method: str, security: list[dict[str, list[str]]]
    ) -> dict[int, str]:
        """Statuses every operation of its kind can produce."""
        errors = {503: STATUS_TEXT[503]}
        if security and tag in ("privacy", "admin", "developer"):
            errors[401] = "Not signed in: these APIs are authenticated by the session cookie"
            if method != "get":
                errors[400] = "Invalid input, or no valid CSRF token in X-CSRFToken"
        elif tag == "platform":
            errors[401] = "No valid platform API key (Authorization: Bearer <key>)"
        elif tag == "data":
            errors[401] = "No access token, or it is invalid, expired or revoked (see WWW-Authenticate)"
            errors[403] = "The token lacks the scope this needs (`scope`, `grant_url`)"
        if meta.body is not None and meta.body_type == "application/json":
            errors.update({400: errors.get(400, STATUS_TEXT[400]), 413: STATUS_TEXT[413]})
            if meta.checks_type:
                errors[415] = STATUS_TEXT[415]
        if meta.query is not None and tag != "oauth":
            errors.setdefault(400, "Invalid query parameter: `errors` names it")
        return errors


def _first_clause(text: str) -> str:
    """Up to the first ". ", "; " or ": " that is not inside brackets or backquotes."""
    depth, quoted = 0, False
    for i, ch in enumerate(text):
        if ch == "`":
            quoted = not quoted
        elif not quoted and ch in "([{":
            depth += 1
        elif not quoted and ch in ")]}":
            depth -= 1
        elif not quoted and depth == 0 and ch in ".;:" and text[i + 1 : i + 2] in (" ", ""):
            return text[:i]
    return text


def build_spec(app: Flask) -> dict[str, Any]:
    return _Builder(app).build()


def spec_for(app: Flask) -> dict[str, Any]:
    """The document of this app, built once."""
    doc = app.extensions.get("openapi_doc")
    if doc is None:
        doc = app.extensions["openapi_doc"] = build_spec(app)
    return doc


@bp.get("/openapi.json")
def openapi_json() -> Any:
    """The OpenAPI 3.1 document (built once per app)."""
    return jsonify(spec_for(current_app))


@bp.get("/docs")
def docs() -> Any:
    """Server-rendered API reference: no JavaScript, no CDN, fits the page CSP."""
    doc = spec_for(current_app)
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            groups.setdefault(op["tags"][0], []).append({"path": path, "method": method.upper(), **op})
    return render_template("openapi_docs.html", doc=doc, groups=groups)
