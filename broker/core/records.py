"""Typed records: the one place where a Redis hash becomes typed fields and back.

Each record has exactly one ``from_hash`` (the stored strings -> ints, bools, lists) and one
``to_hash`` (the inverse), written so that ``R.from_hash(h).to_hash() == h`` for every hash the
services write: the layout of docs/data-model.md does not depend on who reads it. Where a service
hands a JSON-ish dict to its callers, ``public()`` gives exactly that dict.

Hash-backed records (User, Org, App, Grant, Installation) hold what the hash holds: a field the hash
lacks is ``None`` and stays absent in ``to_hash`` and ``public`` (a deleted user is a tombstone of
three fields); fields the record does not name are kept in ``extra``, unchanged. Each field's codec
is declared beside it (``_int``, ``_bool01``, ``_words``, ``_json_list``; plain strings need none).

Membership is one entry of an org's role hash (``{uid: role JSON}``); TokenInfo is a token hash as
the lookup script returns it; DisclosureRecord is one journal stream entry (``{"r": record JSON}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

Decode = Callable[[str], Any]
Encode = Callable[[Any], str]


def _codec(decode: Decode, encode: Encode) -> dict[str, Any]:
    return {"codec": (decode, encode)}


def _decode_json_list(raw: str) -> list[str]:
    """A JSON list of strings; anything unreadable reads as empty (as the registry always did)."""
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


_int = _codec(int, str)
_bool01 = _codec(lambda raw: raw == "1", lambda value: "1" if value else "0")
_words = _codec(lambda raw: raw.split(), " ".join)
_json_list = _codec(_decode_json_list, lambda value: json.dumps(list(value)))


def _decode_label(raw: str) -> list[dict[str, Any]]:
    """An app's data label: a JSON list of ``{"field", "purpose", "retention_days"}`` objects;
    anything unreadable reads as no label (the app declared nothing)."""
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict) and isinstance(v.get("field"), str)]


_label = _codec(_decode_label, lambda value: json.dumps(list(value), separators=(",", ":")))


class _HashRecord:
    """``from_hash``/``to_hash`` for dataclasses whose fields declare a codec (default: string)."""

    extra: Mapping[str, str]
    _codecs: ClassVar[dict[str, tuple[Decode, Encode]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._codecs = {}

    @classmethod
    def _field_codecs(cls) -> dict[str, tuple[Decode, Encode]]:
        if not cls._codecs:
            cls._codecs = {
                f.name: f.metadata.get("codec", (str, str))
                for f in fields(cls)  # type: ignore[arg-type]
                if f.name != "extra"
            }
        return cls._codecs

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Self:
        codecs = cls._field_codecs()
        known = {k: codecs[k][0](v) for k, v in raw.items() if k in codecs}
        extra = {k: v for k, v in raw.items() if k not in codecs}
        return cls(**known, extra=extra)  # type: ignore[call-arg]

    def to_hash(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, (_, encode) in self._field_codecs().items():
            value = getattr(self, name)
            if value is not None:
                out[name] = encode(value)
        out.update(self.extra)
        return out

    def _present(self) -> dict[str, Any]:
        """The decoded fields the hash holds, then the ones the record does not name."""
        out = {name: getattr(self, name) for name in self._field_codecs() if getattr(self, name) is not None}
        out.update(self.extra)
        return out


# -- directory -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User(_HashRecord):
    """``keys.user(uid)``; a deleted user keeps ``id``, ``status=deleted`` and ``deleted_at``."""

    id: str | None = None
    username: str | None = None
    nickname: str | None = None
    avatar: str | None = None
    name: str | None = None
    email: str | None = None
    mobile: str | None = None
    password_hash: str | None = None
    status: str | None = None
    created_at: int | None = field(default=None, metadata=_int)
    updated_at: int | None = field(default=None, metadata=_int)
    deleted_at: str | None = None  # left a string, as the directory has always returned it
    extra: Mapping[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The user as the directory returns it: everything but the password hash."""
        out = self._present()
        out.pop("password_hash", None)
        return out


@dataclass(frozen=True, slots=True)
class Org(_HashRecord):
    """``keys.org(oid)``; members may add mini-programs unless ``allow_member_mini_programs`` is 0."""

    id: str | None = None
    name: str | None = None
    allow_member_mini_programs: bool | None = field(default=None, metadata=_bool01)
    # App policy: client ids members may use even when mini-programs are off, and ids blocked for
    # the organization (mini-programs for its members; App Center apps for its admins).
    allowed_apps: list[str] | None = field(default=None, metadata=_words)
    blocked_apps: list[str] | None = field(default=None, metadata=_words)
    created_at: int | None = field(default=None, metadata=_int)
    updated_at: int | None = field(default=None, metadata=_int)
    extra: Mapping[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        out = self._present()
        out["allow_member_mini_programs"] = self.allow_member_mini_programs is not False
        out["allowed_apps"] = list(self.allowed_apps or [])
        out["blocked_apps"] = list(self.blocked_apps or [])
        return out


@dataclass(frozen=True, slots=True)
class Membership:
    """One entry of ``keys.org_roles(oid)``: ``{uid: '{"role":...,"permissions":[...]}'}``."""

    user_id: str
    role: str
    permissions: tuple[str, ...] = ()

    @classmethod
    def of(cls, user_id: str, role: str, permissions: Iterable[str] = ()) -> Self:
        """Only a sub-admin holds permissions; they are kept sorted and once each."""
        return cls(user_id, role, tuple(sorted(set(permissions))) if role == "sub_admin" else ())

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Self:
        """Raises ValueError, TypeError or KeyError on an entry that is not a role JSON object."""
        ((user_id, value),) = raw.items()
        data = json.loads(value)
        permissions = data.get("permissions")
        return cls(user_id, str(data["role"]), tuple(permissions) if isinstance(permissions, list) else ())

    def role_json(self) -> str:
        return json.dumps({"role": self.role, "permissions": list(self.permissions)}, separators=(",", ":"))

    def to_hash(self) -> dict[str, str]:
        return {self.user_id: self.role_json()}

    def public(self) -> dict[str, Any]:
        """``{"role": ..., "permissions": [...]}`` as ``directory.member_role`` returns it."""
        return {"role": self.role, "permissions": list(self.permissions)}


# -- apps and consent ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class App(_HashRecord):
    """``keys.app(client_id)``: an OAuth client (the webhook secrets are stored, never shown)."""

    client_id: str | None = None
    name: str | None = None
    description: str | None = None
    kind: str | None = None
    client_type: str | None = None
    developer_id: str | None = None
    contact: str | None = None
    privacy_policy_url: str | None = None
    redirect_uris: list[str] | None = field(default=None, metadata=_json_list)
    scopes: list[str] | None = field(default=None, metadata=_words)
    webhook_url: str | None = None
    status: str | None = None
    created_at: int | None = field(default=None, metadata=_int)
    updated_at: int | None = field(default=None, metadata=_int)
    webhook_secret: str | None = None
    webhook_secret_previous: str | None = None
    webhook_secret_previous_expires: str | None = None
    # OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0 (broker.web.interactions.logout)
    post_logout_redirect_uris: list[str] | None = field(default=None, metadata=_json_list)
    backchannel_logout_uri: str | None = None
    terms_of_service_url: str | None = None
    # The data label (like an app store's privacy label): the fields the app says it uses, why,
    # and how long it keeps them.
    data_label: list[dict[str, Any]] | None = field(default=None, metadata=_label)
    review: str | None = None  # operator review of an org app: pending, approved, rejected
    review_reason: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The app as the registry returns it: no webhook secret, URIs and scopes always lists."""
        out = {k: v for k, v in self._present().items() if not k.startswith("webhook_secret")}
        out["redirect_uris"] = list(self.redirect_uris or [])
        out["scopes"] = list(self.scopes or [])
        return out


@dataclass(frozen=True, slots=True)
class Grant(_HashRecord):
    """``keys.grant(client_id, uid)``: the fields a person ticked and the scopes still holding one."""

    id: str | None = None
    client_id: str | None = None
    user_id: str | None = None
    scopes: list[str] | None = field(default=None, metadata=_words)
    fields: list[str] | None = field(default=None, metadata=_words)
    purpose: str | None = None
    # What the app declared, when the person consented, for each granted field: why and how long
    # it keeps it (the app's data label, see App); receipts carry it.
    label: list[dict[str, Any]] | None = field(default=None, metadata=_label)
    consent_version: str | None = None
    created_at: int | None = field(default=None, metadata=_int)
    updated_at: int | None = field(default=None, metadata=_int)
    extra: Mapping[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        out = self._present()
        out["scopes"] = list(self.scopes or [])
        out["fields"] = list(self.fields or [])
        return out


@dataclass(frozen=True, slots=True)
class Installation(_HashRecord):
    """``keys.installation(client_id, oid)``: an org_app in one organization."""

    id: str | None = None
    client_id: str | None = None
    org_id: str | None = None
    scopes: list[str] | None = field(default=None, metadata=_words)
    # the member fields the admin chose (issue 13, item 2); absent: every field of the scopes
    fields: list[str] | None = field(default=None, metadata=_words)
    enabled: bool | None = field(default=None, metadata=_bool01)
    installed_by: str | None = None
    created_at: int | None = field(default=None, metadata=_int)
    updated_at: int | None = field(default=None, metadata=_int)
    extra: Mapping[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        out = self._present()
        out["scopes"] = list(self.scopes or [])
        out["fields"] = list(self.fields) if self.fields is not None else None
        out["enabled"] = bool(self.enabled)
        return out


# -- tokens ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An access or refresh token as the lookup script returns it (``broker.tokens.service``; the
    stored value is one packed string, docs/data-model.md "Tokens").

    ``effective_scopes`` is not stored: the lookup script appends it (issued ∩ current grant or
    installation scopes). ``client_id`` and ``token_type`` are not stored either: the token and its
    key say them.
    """

    client_id: str
    kind: str  # grant | installation
    subject: str  # uid or org id
    grant_id: str
    scopes: tuple[str, ...] = ()  # as issued
    effective_scopes: tuple[str, ...] = ()
    issued_at: int = 0
    expires_at: int = 0
    auth_time: int | None = None
    family: str = ""
    rotated_at: int | None = None
    token_type: str = ""  # access_token | refresh_token

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Self:
        return cls(
            client_id=raw["client_id"],
            kind=raw["kind"],
            subject=raw["subject"],
            grant_id=raw["grant_id"],
            scopes=tuple(raw.get("scopes", "").split()),
            effective_scopes=tuple(raw.get("effective_scopes", "").split()),
            issued_at=int(raw.get("issued_at", "0")),
            expires_at=int(raw.get("expires_at", "0")),
            auth_time=int(raw["auth_time"]) if raw.get("auth_time") else None,
            family=raw.get("family", ""),
            rotated_at=int(raw["rotated_at"]) if raw.get("rotated_at") else None,
        )


# -- the disclosure ledger ---------------------------------------------------------------------------

_RECORD_KEYS = (
    "id", "time", "app", "developer", "audience", "org", "person", "grant", "fields", "endpoint",
    "request_id", "catalog_version",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DisclosureRecord:
    """One disclosure: who received which field names about whom, under what, through which endpoint.

    Stored as a journal stream entry ``{"r": <record JSON>}`` (the gate's script writes most, from a
    template; ``Gate.record_issued`` the id_token's), then as the ledger's canonical JSON with its
    ``index``. Keys a record lacks stay absent (``missing``); keys it adds (``index``, ``corrects``,
    ``delivered``...) are kept in ``extra``.
    """

    id: str = ""
    time: float = 0
    app: str = ""
    developer: str = ""
    audience: str = ""
    org: str | None = None
    person: str = ""
    grant: str = ""
    fields: tuple[str, ...] = ()
    endpoint: str = ""
    request_id: str = ""
    catalog_version: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    missing: frozenset[str] = frozenset()

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Self:
        """From a journal entry ``{"r": record JSON}`` or a ledger body ``{"r": canonical JSON}``."""
        data: dict[str, Any] = json.loads(raw["r"])
        known = {k: data[k] for k in _RECORD_KEYS if k in data}
        if "fields" in known:
            known["fields"] = tuple(known["fields"] or ())
        return cls(
            **known,
            extra={k: v for k, v in data.items() if k not in _RECORD_KEYS},
            missing=frozenset(k for k in _RECORD_KEYS if k not in data),
        )

    def to_hash(self) -> dict[str, str]:
        return {"r": json.dumps(self.public())}

    def public(self) -> dict[str, Any]:
        """The record as JSON readers get it (``fields`` a list)."""
        out: dict[str, Any] = {}
        for name in _RECORD_KEYS:
            if name not in self.missing:
                value = getattr(self, name)
                out[name] = list(value) if name == "fields" else value
        out.update(self.extra)
        return out
