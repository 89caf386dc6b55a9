"""The scope catalog: fields and scopes declared as TOML data in ``scopes/``.

Validated with marshmallow at start-up (an invalid catalog stops the service) and by
``broker scopes check``. Every error names the file, the entry and the problem.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from marshmallow import RAISE, Schema, ValidationError, validate
from marshmallow import fields as mf

Audience = Literal["individual", "organization"]
NAME_RE = r"^[a-z][a-z0-9_]{0,39}$"
SCOPE_RE = r"^[a-z][a-z0-9_.:-]{0,63}$"
LANGUAGES = ("en", "zh")
_NAME_ERROR = "invalid name {input!r}: use lowercase letters and digits (scopes may also use . : - _)"


class CatalogError(Exception):
    """The catalog is invalid; the message names the file, the entry and the problem."""


def _bool(**kwargs: Any) -> mf.Boolean:
    """A TOML boolean only: no "yes", 1 or "true" strings."""
    return mf.Boolean(truthy={True}, falsy={False}, **kwargs)


class _Descriptions(Schema):
    class Meta:
        unknown = RAISE

    en = mf.String(required=True, validate=validate.Length(min=1, max=300))
    zh = mf.String(required=True, validate=validate.Length(min=1, max=300))


class _FieldSchema(Schema):
    class Meta:
        unknown = RAISE

    sensitivity = mf.String(required=True, validate=validate.OneOf(["low", "moderate", "high"]))
    shareable = _bool(required=True)
    basic = _bool(load_default=False)
    required = _bool(load_default=False)
    type = mf.String(load_default="string", validate=validate.OneOf(["string", "list"]))
    description = mf.Nested(_Descriptions, required=True)
    # What an organization's admin reads ("Each member's nickname"): required of every field an
    # organization scope reaches, since the admin decides for others (issue 13, item 2).
    admin_description = mf.Nested(_Descriptions, load_default=None)


class _ScopeSchema(Schema):
    class Meta:
        unknown = RAISE

    audience = mf.String(required=True, validate=validate.OneOf(["individual", "organization"]))
    field_names = mf.List(
        mf.String(validate=validate.Regexp(NAME_RE)),
        required=True,
        data_key="fields",
        validate=validate.Length(min=1),
    )
    separate_consent = _bool(load_default=False)
    description = mf.Nested(_Descriptions, required=True)


class _FileSchema(Schema):
    class Meta:
        unknown = RAISE

    title = mf.String(load_default="")
    field_defs = mf.Dict(
        keys=mf.String(validate=validate.Regexp(NAME_RE, error=_NAME_ERROR)),
        values=mf.Dict(),
        load_default=dict,
        data_key="fields",
    )
    scopes = mf.Dict(
        keys=mf.String(validate=validate.Regexp(SCOPE_RE, error=_NAME_ERROR)),
        values=mf.Dict(),
        load_default=dict,
    )


@dataclass(frozen=True)
class Field:
    name: str
    sensitivity: str
    shareable: bool
    basic: bool
    required: bool
    description: dict[str, str]
    type: str = "string"  # "list": a list of strings (a member's department names)
    admin_description: dict[str, str] | None = None

    def described(self, lang: str, audience: Audience = "individual") -> str:
        """The field's text for the person it is about, or (``organization``) for the admin who
        decides for the members, in ``lang`` (English when that language is missing)."""
        texts = self.admin_description if audience == "organization" and self.admin_description else None
        texts = texts or self.description
        return texts.get(lang) or texts["en"]


# Field attributes added after grants recorded their per-scope digests: a person never reads the
# admin's text, so it is never part of what they agreed to; ``type`` counts only when it is not the
# default. Adding them asked nobody again.
_DIGEST_IGNORED = frozenset({"admin_description"})
_DIGEST_DEFAULTS: dict[str, Any] = {"type": "string"}


def _digested(field: Field) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(field).items()
        if k not in _DIGEST_IGNORED and (k not in _DIGEST_DEFAULTS or v != _DIGEST_DEFAULTS[k])
    }


@dataclass(frozen=True)
class Scope:
    name: str
    audience: Audience
    fields: tuple[str, ...]
    separate_consent: bool
    description: dict[str, str]


@dataclass(frozen=True)
class Catalog:
    fields: dict[str, Field]
    scopes: dict[str, Scope]
    version: str
    files: tuple[str, ...]

    def scope_names(self, audience: Audience | None = None) -> list[str]:
        return sorted(n for n, s in self.scopes.items() if audience is None or s.audience == audience)

    def unknown_scopes(self, names: Iterable[str], audience: Audience | None = None) -> list[str]:
        return sorted(
            {n for n in names if n not in self.scopes or (audience and self.scopes[n].audience != audience)}
        )

    def scope_version(self, name: str) -> str:
        """What a person reads and agrees to for one scope (its audience, fields, whether it needs
        separate consent, its texts and its fields' texts) as a short digest: when it changes, the
        consent given to it is asked for again."""
        scope = self.scopes[name]
        text = json.dumps(
            {
                "scope": {**vars(scope), "fields": list(scope.fields)},
                "fields": {f: _digested(self.fields[f]) for f in scope.fields if f in self.fields},
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def fields_of(self, scope_names: Iterable[str]) -> set[str]:
        """Shareable fields reachable through the given scopes (never a non-shareable one)."""
        out: set[str] = set()
        for name in scope_names:
            scope = self.scopes.get(name)
            if scope is None:
                continue
            out.update(f for f in scope.fields if self.fields[f].shareable)
        return out

    def shareable(self) -> set[str]:
        return {n for n, f in self.fields.items() if f.shareable}

    def required_fields(self, scope_names: Iterable[str]) -> set[str]:
        """The fields that always flow with these scopes (``required``: the app's id for the person)."""
        return {f for f in self.fields_of(scope_names) if self.fields[f].required}

    def list_fields(self) -> frozenset[str]:
        return frozenset(n for n, f in self.fields.items() if f.type == "list")


def _fmt(messages: Any) -> str:
    """Flatten marshmallow's nested messages to 'path: problem' text."""
    parts: list[str] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"key", "value"} and prefix:  # marshmallow's Dict key/value wrapper
                    walk(prefix, value)
                    continue
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, list):
            for item in node:
                walk(prefix, item)
        else:
            parts.append(f"{prefix}: {node}" if prefix else str(node))

    walk("", messages)
    return "; ".join(parts)


def _load_file(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot be read: {exc}") from None
    try:
        data: dict[str, Any] = _FileSchema().load(raw)
    except ValidationError as exc:
        raise CatalogError(f"{path}: {_fmt(exc.messages)}") from None
    return data


def load(directory: Path | str) -> Catalog:
    directory = Path(directory)
    if not directory.is_dir():
        raise CatalogError(f"{directory}: the scope catalog directory does not exist")
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise CatalogError(f"{directory}: no *.toml catalog files found")

    field_map: dict[str, Field] = {}
    scope_map: dict[str, Scope] = {}
    origin: dict[str, Path] = {}
    for path in files:
        data = _load_file(path)
        for name, raw in data["field_defs"].items():
            if name in field_map:
                raise CatalogError(f"{path}: fields.{name}: already declared in {origin['f:' + name]}")
            try:
                value = _FieldSchema().load(raw)
            except ValidationError as exc:
                raise CatalogError(f"{path}: fields.{name}: {_fmt(exc.messages)}") from None
            if value["basic"] and not value["shareable"]:
                raise CatalogError(f"{path}: fields.{name}: a basic field must be shareable")
            field_map[name] = Field(name=name, **value)
            origin["f:" + name] = path
        for name, raw in data["scopes"].items():
            if name in scope_map:
                raise CatalogError(f"{path}: scopes.{name}: already declared in {origin['s:' + name]}")
            try:
                value = _ScopeSchema().load(raw)
            except ValidationError as exc:
                raise CatalogError(f"{path}: scopes.{name}: {_fmt(exc.messages)}") from None
            value["fields"] = tuple(value.pop("field_names"))
            scope_map[name] = Scope(name=name, **value)
            origin["s:" + name] = path

    for name, scope in scope_map.items():
        where = f"{origin['s:' + name]}: scopes.{name}"
        if len(set(scope.fields)) != len(scope.fields):
            raise CatalogError(f"{where}: a field is listed twice")
        for fname in scope.fields:
            fdef = field_map.get(fname)
            if fdef is None:
                raise CatalogError(f"{where}: field {fname!r} is not declared under [fields]")
            if not fdef.shareable:
                raise CatalogError(f"{where}: field {fname!r} is not shareable and cannot be part of a scope")
            if not fdef.basic and not scope.separate_consent:
                raise CatalogError(
                    f"{where}: field {fname!r} is not basic, so the scope must set separate_consent = true"
                )
            if scope.audience == "organization" and fdef.admin_description is None:
                raise CatalogError(
                    f"{where}: field {fname!r} is shared by an organization scope, so it needs "
                    "admin_description.en and admin_description.zh (what the admin reads)"
                )
    if "openid" not in scope_map or scope_map["openid"].audience != "individual":
        raise CatalogError(f"{directory}: the catalog must declare the individual scope 'openid'")

    canonical = json.dumps(
        {
            "fields": {n: vars(f) for n, f in sorted(field_map.items())},
            "scopes": {n: {**vars(s), "fields": list(s.fields)} for n, s in sorted(scope_map.items())},
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    version = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return Catalog(fields=field_map, scopes=scope_map, version=version, files=tuple(str(p) for p in files))


_LOADED: dict[str, Catalog] = {}


def load_once(directory: Path | str) -> Catalog:
    """The catalog of ``directory``, loaded and validated once per process."""
    key = str(Path(directory).resolve())
    found = _LOADED.get(key)
    if found is None:
        found = _LOADED[key] = load(directory)
    return found
