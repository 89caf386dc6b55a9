"""Write directory, app, grant, installation and token records exactly as docs/data-model.md says.

Used where a test needs state without walking through the flows that create it; the flows
themselves are tested end to end elsewhere.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from broker.config import Settings
from broker.core.hashing import keyed_hash
from broker.storage import keys
from broker.storage.store import Store


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(8)}"


def make_user(store: Store, *, username: str | None = None, **fields: str) -> str:
    uid = new_id("usr_")
    record = {
        "id": uid,
        "username": username or uid,
        "nickname": f"nick-{uid[-4:]}",
        "avatar": f"https://avatars.example/{uid}.png",
        "name": "Real Name",
        "email": f"{uid}@example.com",
        "mobile": "+8613800000000",
        "status": "active",
        "created_at": str(int(time.time())),
    }
    record.update(fields)
    store.redis.hset(keys.user(uid), mapping=record)
    return uid


def make_org(store: Store, members: list[str] | None = None, name: str = "org") -> str:
    oid = new_id("org_")
    store.redis.hset(keys.org(oid), mapping={"id": oid, "name": name, "created_at": str(int(time.time()))})
    for seq, uid in enumerate(members or [], start=1):
        store.redis.zadd(keys.org_members(oid), {uid: seq})
        store.redis.hset(keys.org_roles(oid), uid, json.dumps({"role": "member", "permissions": []}))
        store.redis.sadd(keys.user_orgs(uid), oid)
    return oid


def make_app(
    store: Store, *, kind: str = "mini_program", developer_id: str = "usr_dev", **fields: Any
) -> str:
    client_id = new_id("app_")
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
    record.update({k: str(v) for k, v in fields.items()})
    store.redis.hset(keys.app(client_id), mapping=record)
    return client_id


def make_grant(store: Store, client_id: str, uid: str, scopes: str, fields: str) -> str:
    gid = new_id("gr_")
    now = str(int(time.time()))
    store.redis.hset(
        keys.grant(client_id, uid),
        mapping={
            "id": gid,
            "client_id": client_id,
            "user_id": uid,
            "scopes": scopes,
            "fields": fields,
            "purpose": "test",
            "consent_version": "test",
            "created_at": now,
            "updated_at": now,
        },
    )
    return gid


def make_installation(
    store: Store, client_id: str, org_id: str, scopes: str = "org.members.read", enabled: bool = True
) -> str:
    iid = new_id("in_")
    now = str(int(time.time()))
    store.redis.hset(
        keys.installation(client_id, org_id),
        mapping={
            "id": iid,
            "client_id": client_id,
            "org_id": org_id,
            "scopes": scopes,
            "enabled": "1" if enabled else "0",
            "installed_by": "usr_admin",
            "created_at": now,
            "updated_at": now,
        },
    )
    return iid


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
    token = f"brk_at_{client_id}.{secrets.token_urlsafe(32)}"
    key = keys.access_token(client_id, keyed_hash(settings.token_hash_key, token))
    now = int(time.time())
    store.redis.hset(
        key,
        mapping={
            "client_id": client_id,
            "kind": kind,
            "subject": subject,
            "grant_id": grant_id,
            "scopes": scopes,
            "issued_at": str(now),
            "expires_at": str(now + ttl),
        },
    )
    store.redis.expireat(key, now + max(ttl, 1))
    store.redis.sadd(keys.grant_tokens(client_id, grant_id), key)
    return token


def journal_records(store: Store, client_id: str) -> list[dict[str, Any]]:
    return [json.loads(fields["r"]) for _, fields in store.redis.xrange(keys.journal(client_id))]
