"""The one place tests make users, organizations, apps, grants, installations and tokens.

``make_*`` go through the domain services (``broker.directory.service``, ``broker.apps.registry``,
``broker.consent.grants``/``installations``, ``broker.tokens.service``), so what a test starts from
is what the broker itself would have written.

``raw_*`` write the hashes exactly as docs/data-model.md describes them, for the states the services
will not make on purpose: an app whose developer is only a name in its records, a grant or an
installation with exactly the fields a test states (``save_consent`` adds a scope's required fields,
``install`` refuses a mini-program or an unknown organization), a client secret with a chosen expiry.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from broker.apps import registry
from broker.config import REPO_SCOPES_DIR, Settings
from broker.consent import grants, installations
from broker.core import catalog as catalog_mod
from broker.core import ids
from broker.core.hashing import keyed_hash
from broker.directory import service as directory
from broker.storage import keys
from broker.storage.store import Store
from broker.tokens import service as tokens

# The fields ``directory.create_user`` takes; anything else a test gives is written to the hash after.
_USER_FIELDS = ("username", "password", "nickname", "avatar", "name", "email", "mobile")


def make_user(store: Store, username: str | None = None, password: str | None = None, **fields: Any) -> str:
    """An active user made by ``directory.create_user``; returns the id.

    Without a username the id is the username; without a password the user cannot sign in. ``id``
    picks the user id (tests with fixed ids); fields the service does not take (``status``,
    ``title``...) are written to the user's hash afterwards.
    """
    uid = str(fields.pop("id", None) or ids.new_user_id())
    data: dict[str, Any] = {
        "id": uid,
        "username": username or uid,
        "nickname": f"nick-{uid[-4:]}",
        "avatar": f"https://avatars.example/{uid}.png",
        "name": "Real Name",
        "email": f"{uid}@example.com",
        "mobile": "+8613800000000",
    }
    if password is not None:
        data["password"] = password
    data.update({k: v for k, v in fields.items() if k in _USER_FIELDS})
    directory.create_user(store, data)
    extra = {k: str(v) for k, v in fields.items() if k not in _USER_FIELDS}
    if extra:
        store.redis.hset(keys.user(uid), mapping=extra)
    return uid


def make_org(store: Store, members: list[str] | None = None, name: str = "org", **fields: Any) -> str:
    """An organization made by ``directory.create_org`` with ``members`` added as plain members."""
    oid = directory.create_org(store, {"name": name, **fields})["id"]
    for uid in members or []:
        directory.add_member(store, oid, uid)
    return oid


def _catalog(settings: Settings) -> catalog_mod.Catalog:
    return catalog_mod.load_once(settings.scopes_dir)


def make_app(store: Store, settings: Settings, **overrides: Any) -> tuple[str, str | None]:
    """An app registered by ``registry.register_app``; returns (client_id, client secret or None).

    A confidential mini-program asking for ``openid profile`` unless told otherwise; its developer
    is a new user unless ``developer_id`` names one. ``status="suspended"`` suspends it after.
    """
    status = overrides.pop("status", "active")
    scopes = overrides.pop("scopes", "openid profile")
    data: dict[str, Any] = {
        "kind": "mini_program",
        "client_type": "confidential",
        "name": "Test app",
        "contact": "dev@example.com",
        "privacy_policy_url": "https://app.example.com/privacy",
        "redirect_uris": ["https://app.example.com/cb"],
        "scopes": scopes.split() if isinstance(scopes, str) else list(scopes),
        **overrides,
    }
    data.setdefault("developer_id", None)
    data["developer_id"] = data["developer_id"] or make_user(store)
    record, secret, _webhook_secret = registry.register_app(store, settings, _catalog(settings), data)
    if status == "suspended":
        registry.suspend_app(store, record["client_id"])
    return record["client_id"], secret


def make_grant(
    store: Store,
    settings: Settings,
    client_id: str,
    uid: str,
    scopes: list[str] | str,
    fields: list[str] | str,
    *,
    consent_version: str | None = None,
) -> str:
    """A person's consent saved by ``grants.save_consent`` (indexes, event and receipt included);
    returns the grant id. The service adds the scopes' required fields. ``consent_version`` defaults
    to what the consent page records today (so no re-consent is due)."""
    scope_list = scopes.split() if isinstance(scopes, str) else list(scopes)
    if consent_version is None:
        consent_version = grants.consent_version(_catalog(settings), scope_list)
    record = grants.save_consent(
        store,
        settings,
        _catalog(settings),
        client_id,
        uid,
        scopes.split() if isinstance(scopes, str) else scopes,
        fields.split() if isinstance(fields, str) else fields,
        "test",
        consent_version,
    )
    assert record is not None, "nothing was granted"
    return str(record["id"])


def make_installation(
    store: Store, client_id: str, org_id: str, scopes: list[str] | str | None = None, enabled: bool = True
) -> str:
    """An org_app added to an organization by ``installations.install`` (all the app requests unless
    ``scopes`` says less), switched off by ``installations.disable`` if ``enabled=False``."""
    chosen = scopes.split() if isinstance(scopes, str) else scopes
    record = installations.install(store, client_id, org_id, chosen)
    if not enabled:
        installations.disable(store, client_id, org_id)
    return str(record["id"])


def make_token(
    store: Store,
    settings: Settings,
    client_id: str,
    *,
    kind: str,
    subject: str,
    grant_id: str,
    scopes: str,
    ttl: int = 3600,
) -> str:
    """An access token (no refresh token) stored by ``tokens.issue``; returns the token."""
    token = ids.new_token(ids.ACCESS_PREFIX, client_id)
    tokens.issue(
        store,
        settings.token_hash_key,
        tokens.Issue(
            client_id=client_id,
            kind=kind,
            subject=subject,
            grant_id=grant_id,
            scopes=scopes,
            access_token=token,
            access_expires_at=int(time.time()) + ttl,
            refresh_token=None,
            refresh_expires_at=0,
            family=tokens.new_family(),
        ),
    )
    return token


def installation_token(store: Store, settings: Settings, client_id: str, org_id: str, scopes: str) -> str:
    """An organization access token under the app's current installation in ``org_id``."""
    from broker.consent import installations

    inst = installations.require_installation(store, client_id, org_id)
    return make_token(
        store, settings, client_id, kind="installation", subject=org_id, grant_id=inst["id"], scopes=scopes
    )


# -- raw writers: states the services will not make ------------------------------------------------


def _hex_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(8)}"


def raw_app(store: Store, *, kind: str = "mini_program", developer_id: str = "usr_dev", **fields: Any) -> str:
    """An app hash the registry would refuse or for a developer that need not exist (no secret, no
    indexes; ``raw_secret`` adds one); returns the id."""
    client_id = _hex_id("app_")
    record = {
        "client_id": client_id,
        "name": f"App {client_id[-4:]}",
        "kind": kind,
        "client_type": "public" if kind == "mini_program" else "confidential",
        "developer_id": developer_id,
        "redirect_uris": json.dumps(["http://127.0.0.1:8765/callback"]),
        "scopes": "openid profile" if kind == "mini_program" else "org.members.read",
        "status": "active",
        "created_at": str(int(time.time())),
    }
    record.update({k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in fields.items()})
    store.redis.hset(keys.app(client_id), mapping=record)
    return client_id


def raw_secret(store: Store, settings: Settings, client_id: str, expires: int | None) -> str:
    """One more client secret for ``client_id`` with a chosen expiry (rotation picks its own)."""
    secret = f"brk_cs_{secrets.token_urlsafe(32)}"
    store.redis.hset(
        keys.app_secrets(client_id),
        keyed_hash(settings.token_hash_key, secret),
        json.dumps({"created": int(time.time()), "expires": expires}),
    )
    return secret


def raw_grant(
    store: Store,
    client_id: str,
    uid: str,
    scopes: list[str] | str,
    fields: list[str] | str,
    *,
    indexed: bool = True,
) -> str:
    """A grant of exactly ``fields`` under ``scopes``; with ``indexed`` also in the app's and the
    person's grant indexes (as ``save_consent`` keeps them). Returns the grant id."""
    grant_id = _hex_id("gr_")
    now = int(time.time())
    scopes_s = scopes if isinstance(scopes, str) else " ".join(scopes)
    fields_s = fields if isinstance(fields, str) else " ".join(fields)
    store.redis.hset(
        keys.grant(client_id, uid),
        mapping={
            "id": grant_id,
            "client_id": client_id,
            "user_id": uid,
            "scopes": scopes_s,
            "fields": fields_s,
            "purpose": "test",
            "consent_version": grants.consent_version(
                catalog_mod.load_once(REPO_SCOPES_DIR), scopes_s.split()
            ),
            "created_at": now,
            "updated_at": now,
        },
    )
    if indexed:
        store.redis.sadd(keys.app_grants(client_id), uid)
        store.redis.sadd(keys.user_grants(uid), client_id)
    return grant_id


def raw_installation(
    store: Store,
    client_id: str,
    org_id: str,
    scopes: list[str] | str = "org.members.read",
    enabled: bool = True,
    *,
    indexed: bool = True,
) -> str:
    """An installation of exactly ``scopes``, of any app in any org id; with ``indexed`` also in the
    app's and the organization's installation indexes. Returns the installation id."""
    inst_id = _hex_id("in_")
    now = int(time.time())
    scopes_s = scopes if isinstance(scopes, str) else " ".join(scopes)
    store.redis.hset(
        keys.installation(client_id, org_id),
        mapping={
            "id": inst_id,
            "client_id": client_id,
            "org_id": org_id,
            "scopes": scopes_s,
            "enabled": "1" if enabled else "0",
            "installed_by": _hex_id("usr_"),
            "created_at": now,
            "updated_at": now,
        },
    )
    if indexed:
        store.redis.sadd(keys.app_installations(client_id), org_id)
        store.redis.sadd(keys.org_installations(org_id), client_id)
    return inst_id
