"""Lifecycle events: the transactional outbox.

``emit`` adds an event to the app's outbox stream inside the caller's MULTI pipeline, so the event
is written atomically with the state change it announces (both keys carry the app's hash tag).
``broker worker`` (broker.events.webhooks) delivers the outbox.

Stream entry: one field ``e`` holding the event JSON::

    {"id": "evt_...", "type": "grant.revoked", "time": <unix seconds, float>,
     "app": <client_id>, "data": {...}}   # data uses pairwise ids only, as the app sees them
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from broker.storage import keys

EVENT_TYPES = frozenset(
    {
        "grant.created",
        "grant.revoked",
        "grant.updated",
        "deletion.requested",
        "installation.installed",
        "installation.disabled",
        "installation.enabled",
        "installation.removed",
        "installation.updated",
        "member.added",
        "member.removed",
        "user.deleted",
        "app.suspended",
        "app.restored",
    }
)


def emit(pipe: Any, client_id: str, event_type: str, data: dict[str, Any]) -> str:
    """Queue ``event_type`` for ``client_id`` on ``pipe`` (a MULTI pipeline); returns the event id."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event_id = f"evt_{secrets.token_hex(12)}"
    event = {"id": event_id, "type": event_type, "time": time.time(), "app": client_id, "data": data}
    pipe.xadd(keys.outbox(client_id), {"e": json.dumps(event, separators=(",", ":"))})
    return event_id
