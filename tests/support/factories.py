"""Writers for the records the apps area owns, exactly as docs/data-model.md describes them.

The protocol tests create apps, grants, installations and users with these until the apps area's
services are merged; broker code reads them only through ``broker.web.oauth.models``.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from argon2 import PasswordHasher

from broker.config import Settings
from broker.core.hashing import keyed_hash
from broker.storage import keys
from broker.storage.store import Store


def _hex_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(8)}"


def make_app(store: Store, settings: Settings, **overrides: Any) -> tuple[str, str | None]:
    """An active app; returns (client_id, secret). Public clients get no secret."""
    client_id = overrides.pop("client_id", None) or _hex_id("app_")
    now = int(time.time())
    record: dict[str, Any] = {
        "client_id": client_id,
        "name": "Test app",
        "description": "",
        "kind": "mini_program",
        "client_type": "confidential",
        "developer_id": _hex_id("usr_"),
        "contact": "dev@example.com",
        "privacy_policy_url": "https://app.example.com/privacy",
        "redirect_uris": ["https://app.example.com/cb"],
        "scopes": "openid profile",
        "webhook_url": "",
        "status": "active",
        "created_at": now,
        "updated_at": now,
    }
    record.update(overrides)
    record["redirect_uris"] = json.dumps(record["redirect_uris"])
    secret: str | None = None
    with store.redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.app(client_id), mapping={k: str(v) for k, v in record.items()})
        if record["client_type"] == "confidential":
            secret = f"brk_cs_{secrets.token_urlsafe(32)}"
            pipe.hset(
                keys.app_secrets(client_id),
                keyed_hash(settings.token_hash_key, secret),
                json.dumps({"created": now, "expires": None}),
            )
        pipe.execute()
    store.redis.zadd(keys.apps_all(), {client_id: now})
    return client_id, secret


def add_secret(store: Store, settings: Settings, client_id: str, expires: int | None) -> str:
    secret = f"brk_cs_{secrets.token_urlsafe(32)}"
    store.redis.hset(
        keys.app_secrets(client_id),
        keyed_hash(settings.token_hash_key, secret),
        json.dumps({"created": int(time.time()), "expires": expires}),
    )
    return secret


def make_grant(
    store: Store, client_id: str, uid: str, scopes: list[str] | str, fields: list[str] | str
) -> str:
    grant_id = _hex_id("gr_")
    now = int(time.time())
    scopes_s = scopes if isinstance(scopes, str) else " ".join(scopes)
    fields_s = fields if isinstance(fields, str) else " ".join(fields)
    with store.redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            keys.grant(client_id, uid),
            mapping={
                "id": grant_id,
                "client_id": client_id,
                "user_id": uid,
                "scopes": scopes_s,
                "fields": fields_s,
                "purpose": "test",
                "consent_version": "1",
                "created_at": now,
                "updated_at": now,
            },
        )
        pipe.sadd(keys.app_grants(client_id), uid)
        pipe.execute()
    store.redis.sadd(keys.user_grants(uid), client_id)
    return grant_id


def make_installation(
    store: Store, client_id: str, org_id: str, scopes: list[str] | str, enabled: bool = True
) -> str:
    inst_id = _hex_id("in_")
    now = int(time.time())
    scopes_s = scopes if isinstance(scopes, str) else " ".join(scopes)
    with store.redis.pipeline(transaction=True) as pipe:
        pipe.hset(
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
        pipe.sadd(keys.app_installations(client_id), org_id)
        pipe.execute()
    store.redis.sadd(keys.org_installations(org_id), client_id)
    return inst_id


def make_user(store: Store, username: str, password: str) -> str:
    uid = _hex_id("usr_")
    now = int(time.time())
    store.redis.hset(
        keys.user(uid),
        mapping={
            "id": uid,
            "username": username,
            "nickname": username.title(),
            "avatar": "",
            "name": "",
            "email": "",
            "mobile": "",
            "password_hash": PasswordHasher().hash(password),
            "status": "active",
            "created_at": now,
            "updated_at": now,
        },
    )
    store.redis.set(keys.username_index(username), uid)
    store.redis.zadd(keys.users_all(), {uid: now})
    return uid
