"""Deletion requests: when a grant ends or shrinks, the app is asked, by a signed event, to delete
what it received (issue 14, item 4).

The event ``deletion.requested`` names the person by the pairwise id the app knows, the fields to
delete and why (``grant_revoked`` or ``scope_withdrawn``), with a request id. It is written in the
same MULTI as the grant change (both in the app's slot), so a change never happens without its
request. The app acknowledges with ``POST /v1/deletion-requests/<id>/ack`` (client authentication);
the person's privacy center shows each request, when it was sent and when the app acknowledged it.

Bounded: an app's requests are forgotten ``KEEP_SECONDS`` after they were sent (trimmed at every
new request); a person's history keeps the newest ``PERSON_MAX``. Account deletion is announced by
``user.deleted``, which is itself the request to delete everything.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import redis

from broker.core.pairwise import pairwise_id
from broker.errors import NotFound
from broker.events import outbox as events
from broker.storage import keys
from broker.storage.store import Store

KEEP_SECONDS = 365 * 86400
PERSON_MAX = 500
REASONS = ("grant_revoked", "scope_withdrawn")


def queue(
    pipe: Any, pairwise_key: str, client_id: str, uid: str, fields: list[str], reason: str
) -> dict[str, Any]:
    """Add the request and its event to ``pipe`` (a MULTI on the app's slot); returns the request.
    Call :func:`index_for_person` after the pipeline ran."""
    if reason not in REASONS:
        raise ValueError(f"unknown deletion reason {reason!r}")
    now = int(time.time())
    request = {
        "id": f"del_{secrets.token_hex(12)}",
        "client_id": client_id,
        "person": uid,
        "fields": sorted(fields),
        "reason": reason,
        "sent_at": now,
        "acked_at": None,
    }
    pipe.hset(keys.deletion_requests(client_id), request["id"], json.dumps(request, separators=(",", ":")))
    pipe.zadd(keys.deletion_requests_by_time(client_id), {request["id"]: now})
    events.emit(
        pipe,
        client_id,
        "deletion.requested",
        {
            "request_id": request["id"],
            "user_id": pairwise_id(pairwise_key, client_id, uid),
            "fields": request["fields"],
            "reason": reason,
        },
    )
    return request


def index_for_person(store: Store, request: dict[str, Any]) -> None:
    """The person's history entry (their slot) and the app's trim of old requests (its slot)."""
    uid, client_id = request["person"], request["client_id"]
    key = keys.user_deletion_requests(uid)
    pipe = store.redis.pipeline(transaction=False)
    pipe.zadd(key, {f"{client_id}:{request['id']}": request["sent_at"]})
    pipe.zremrangebyrank(key, 0, -PERSON_MAX - 1)
    pipe.execute()
    old = store.redis.zrangebyscore(
        keys.deletion_requests_by_time(client_id), "-inf", request["sent_at"] - KEEP_SECONDS
    )
    if old:
        trim = store.redis.pipeline(transaction=True)
        trim.hdel(keys.deletion_requests(client_id), *old)
        trim.zrem(keys.deletion_requests_by_time(client_id), *old)
        trim.execute()


def acknowledge(store: Store, client_id: str, request_id: str) -> dict[str, Any]:
    """The app says it deleted the data; idempotent (the first time is kept). 404 for another
    app's request or an unknown one."""
    key = keys.deletion_requests(client_id)
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.hget(key, request_id) if len(request_id) <= 64 else None
                if raw is None:
                    pipe.unwatch()
                    raise NotFound("no deletion request with this id for this app")
                request: dict[str, Any] = json.loads(raw)
                if request.get("acked_at"):
                    pipe.unwatch()
                    return request
                request["acked_at"] = int(time.time())
                pipe.multi()
                pipe.hset(key, request_id, json.dumps(request, separators=(",", ":")))
                pipe.execute()
                return request
            except redis.WatchError:  # acknowledged meanwhile: read it again
                continue


def for_person(store: Store, uid: str, limit: int = 100) -> list[dict[str, Any]]:
    """The person's deletion requests, newest first, with their state at the app."""
    members = store.redis.zrevrange(keys.user_deletion_requests(uid), 0, limit - 1)
    out = []
    for member in members:
        client_id, _, request_id = member.partition(":")
        raw = store.redis.hget(keys.deletion_requests(client_id), request_id)
        if raw is None:
            continue  # forgotten after KEEP_SECONDS, or the app was deleted
        request = json.loads(raw)
        request.pop("person", None)
        out.append(request)
    return out
