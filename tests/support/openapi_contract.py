"""Every response the test suite sees is checked against the app's OpenAPI document.

``ContractClient`` is the Flask test client of every app the fixtures make (tests/conftest.py), so
each API test is also a contract test: for a documented path and method the status must be listed,
the content type must be one the document gives for it, and the body must validate (JSON Schema
Draft 2020-12, ``#/components/...`` resolved; NDJSON line by line). A mismatch fails the test with
an ``AssertionError`` naming the operation and the problem.

Most JSON API views cannot drift any more: ``@documented`` dumps what they return through their
schema (broker.web.shared.openapi). This check still matters for what the decorator does not
serialize: statuses and content types, error bodies (Problem and RFC 6749 JSON), the Authlib-built
protocol bodies, NDJSON lines, and the catalog-built data API bodies.

The check is stricter than the published document on one point: the document leaves objects open
(clients must ignore new members), the check does not, so the server cannot send a member the
document does not name.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException

from broker.web.shared.openapi import build_spec, openapi_path


class ContractError(AssertionError):
    """A response does not match the OpenAPI document."""


def _closed(node: Any) -> Any:
    """A copy of a schema tree in which every object that lists its properties allows no others."""
    if isinstance(node, dict):
        out = {k: _closed(v) for k, v in node.items()}
        if "properties" in out and out.get("additionalProperties", True) is True:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


class Contract:
    """The document of one kind of app (same routes, same catalog) and the validators built from it."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.components = _closed(doc.get("components", {}))
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    def validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        found = self._validators.get(key)
        if found is None:
            root = {**_closed(schema), "components": self.components}
            found = self._validators[key] = jsonschema.Draft202012Validator(root)
        return found

    def operation(self, app: Flask, environ: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
        """The documented operation a request went to, or None (not an API route)."""
        try:
            rule, _ = app.url_map.bind_to_environ(environ).match(return_rule=True)
        except HTTPException:
            return None
        path, method = openapi_path(rule.rule), str(environ["REQUEST_METHOD"]).lower()
        op = self.doc["paths"].get(path, {}).get(method)
        return (path, method, op) if op is not None else None

    def check(self, app: Flask, response: Any) -> tuple[str, str] | None:
        """Raise ContractError unless ``response`` fits; returns the (method, path) it was checked as."""
        request = getattr(response, "request", None)
        if request is None:
            return None
        found = self.operation(app, request.environ)
        if found is None:
            return None
        path, method, op = found
        where = f"{method.upper()} {path} (operation {op['operationId']})"
        status = str(response.status_code)
        responses = op["responses"]
        entry = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default")
        if entry is None:
            raise ContractError(
                f"{where} answered {status}, which the OpenAPI document does not list "
                f"(it lists {', '.join(responses)}); body: {response.get_data(as_text=True)[:300]!r}"
            )
        content = entry.get("content")
        body = response.get_data(as_text=True)
        if not content:
            return method, path
        if response.mimetype not in content:
            raise ContractError(
                f"{where} answered {status} as {response.mimetype!r}; the document lists "
                f"{', '.join(content)} for {status}; body: {body[:300]!r}"
            )
        media = content[response.mimetype]
        if "x-itemSchema" in media:
            validator = self.validator(media["x-itemSchema"])
            for number, line in enumerate(body.splitlines(), start=1):
                if line.strip():
                    self._validate(validator, _json(where, line), f"{where}, {status} line {number}")
            return method, path
        schema = media.get("schema", {})
        if schema.get("type") != "string":
            self._validate(self.validator(schema), _json(where, body), f"{where}, {status}")
        return method, path

    @staticmethod
    def _validate(validator: jsonschema.Draft202012Validator, value: Any, where: str) -> None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            at = "/".join(str(p) for p in error.absolute_path) or "(the body)"
            raise ContractError(
                f"{where}: the body does not match the OpenAPI document at {at}: {error.message}\n"
                f"body: {json.dumps(value)[:800]}"
            )


def _json(where: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ContractError(f"{where}: the body is not JSON: {text[:300]!r}") from None


_CONTRACTS: dict[str, Contract] = {}


def contract_for(app: Flask) -> Contract:
    """The contract of ``app``; apps with the same routes and catalog share one (built once)."""
    rules = sorted((r.rule, r.endpoint, ",".join(sorted(r.methods or ()))) for r in app.url_map.iter_rules())
    key = json.dumps([rules, app.extensions["broker.catalog"].version])
    if key not in _CONTRACTS:
        _CONTRACTS[key] = Contract(build_spec(app))
    return _CONTRACTS[key]


class ContractClient(FlaskClient):
    """A test client that checks every API response against the OpenAPI document.

    ``checked`` lists (method, path template, status, content type) of every response it checked.
    Set ``check_contract = False`` on a client to switch it off (nothing in the suite does).
    """

    check_contract = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked: list[tuple[str, str, int, str]] = []

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        if self.check_contract and self.application.extensions.get("broker.catalog") is not None:
            seen = contract_for(self.application).check(self.application, response)
            if seen is not None:
                self.checked.append((*seen, response.status_code, response.mimetype))
        return response
