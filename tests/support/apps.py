"""Test helpers for the apps area: directory records written directly, sample app payloads."""

from __future__ import annotations

import json
from typing import Any

from broker.storage import keys
from broker.storage.store import Store


def mini_payload(developer_id: str, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "mini_program",
        "client_type": "public",
        "name": "Notes",
        "description": "Keeps your notes",
        "developer_id": developer_id,
        "contact": "dev@example.com",
        "privacy_policy_url": "https://example.com/privacy",
        "redirect_uris": ["http://127.0.0.1:8765/callback"],
        "scopes": ["openid", "profile"],
    }
    data.update(over)
    return data


def org_payload(developer_id: str, **over: Any) -> dict[str, Any]:
    data = mini_payload(
        developer_id,
        kind="org_app",
        client_type="confidential",
        name="Roster",
        redirect_uris=["https://roster.example.com/cb"],
        scopes=["org.members.read"],
        webhook_url="https://roster.example.com/hooks",
    )
    data.update(over)
    return data


def outbox_events(store: Store, client_id: str) -> list[dict[str, Any]]:
    return [json.loads(fields["e"]) for _, fields in store.redis.xrange(keys.outbox(client_id))]
