"""Server-side browser sessions: the cookie holds a random id, Redis holds the session.

The cookie value is ``<user id>.<random>`` for a signed-in person and ``<random>`` before sign-in.
Redis keys use a keyed hash of the whole value (``BROKER_TOKEN_HASH_KEY``), so a copy of Redis holds no
usable cookie. A signed-in session lives in its person's slot (``keys.session``) next to the person's
index of sessions (``keys.user_sessions``, scored by absolute expiry), so ending every session of a
person is one script on one slot; a session before sign-in stands alone (``keys.anonymous_session``).

Lifetimes: a session ends after ``BROKER_SESSION_IDLE_SECONDS`` without use (the key's TTL, refreshed
on use) and at the latest ``BROKER_SESSION_MAX_SECONDS`` after sign-in (checked on read, and the TTL
never reaches past it). The index drops ids whose absolute expiry passed on every write and listing,
and ids whose session expired early (idle) when it is listed; the index itself expires with the
newest session in it.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from broker.config import Settings
from broker.core.hashing import keyed_hash
from broker.storage import keys
from broker.storage.store import Store

# How stale "last use" may get before a read writes it again (and refreshes the idle TTL).
TOUCH_SECONDS = 60
AGENT_MAX = 256
ANONYMOUS_IDLE = 3600  # a session before sign-in (a login form's CSRF token) lives an hour at most
_COOKIE_RE = re.compile(r"(?:([A-Za-z0-9_-]{1,64})\.)?([A-Za-z0-9_-]{40,64})")


@dataclass
class Session:
    """One session as stored. ``cookie`` is the browser's value (never stored); ``sid`` is the public
    id (privacy center, the OIDC ``sid`` claim); ``clients``: apps that got an id_token in it."""

    cookie: str
    uid: str | None
    sid: str
    created: int
    last: int
    address: str = ""
    agent: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    clients: list[str] = field(default_factory=list)
    digest: str = ""  # the keyed hash naming it in Redis (set when read from a listing)

    def expires_at(self, settings: Settings) -> int:
        return self.created + settings.session_max_seconds


def _split(cookie: str) -> tuple[str | None, str] | None:
    m = _COOKIE_RE.fullmatch(cookie or "")
    if m is None:
        return None
    return m.group(1), m.group(2)


def _digest(settings: Settings, cookie: str) -> str:
    return keyed_hash(settings.token_hash_key, "session:" + cookie)


def _key(settings: Settings, uid: str | None, cookie: str) -> str:
    digest = _digest(settings, cookie)
    return keys.session(uid, digest) if uid else keys.anonymous_session(digest)


def _ttl(settings: Settings, created: int, now: int, *, signed_in: bool = True) -> int:
    idle = settings.session_idle_seconds if signed_in else min(settings.session_idle_seconds, ANONYMOUS_IDLE)
    return max(1, min(idle, created + settings.session_max_seconds - now))


def _to_hash(s: Session) -> dict[str, str]:
    return {
        "sid": s.sid,
        "uid": s.uid or "",
        "created": str(s.created),
        "last": str(s.last),
        "address": s.address,
        "agent": s.agent,
        "data": json.dumps(s.data, separators=(",", ":")),
        "clients": ",".join(s.clients),
    }


def _from_hash(cookie: str, raw: dict[str, str]) -> Session | None:
    try:
        data = json.loads(raw.get("data") or "{}")
        return Session(
            cookie=cookie,
            uid=raw.get("uid") or None,
            sid=raw["sid"],
            created=int(raw["created"]),
            last=int(raw["last"]),
            address=raw.get("address", ""),
            agent=raw.get("agent", ""),
            data=data if isinstance(data, dict) else {},
            clients=[c for c in (raw.get("clients") or "").split(",") if c],
        )
    except (KeyError, ValueError):
        return None


def load(store: Store, settings: Settings, cookie: str, now: int | None = None) -> Session | None:
    """The live session for a cookie value, or None (unknown, malformed, idle or past its lifetime)."""
    parts = _split(cookie)
    if parts is None:
        return None
    uid = parts[0]
    key = _key(settings, uid, cookie)
    raw = store.redis.hgetall(key)
    if not raw:
        return None
    found = _from_hash(cookie, raw)
    now = int(time.time()) if now is None else now
    if found is None or (found.uid or None) != uid or now >= found.created + settings.session_max_seconds:
        end(store, settings, found or Session(cookie, uid, "", 0, 0))
        return None
    return found


def create(
    store: Store,
    settings: Settings,
    uid: str | None,
    data: dict[str, Any],
    *,
    address: str = "",
    agent: str = "",
    now: int | None = None,
) -> Session:
    """A new session with a fresh random id (sign-in always gets a new one: no fixation)."""
    now = int(time.time()) if now is None else now
    token = secrets.token_urlsafe(32)
    cookie = f"{uid}.{token}" if uid else token
    s = Session(cookie=cookie, uid=uid, sid=secrets.token_urlsafe(16), created=now, last=now,
                address=address[:64], agent=agent[:AGENT_MAX], data=dict(data))  # fmt: skip
    save(store, settings, s, now=now, new=True)
    return s


def save(store: Store, settings: Settings, s: Session, *, now: int | None = None, new: bool = False) -> bool:
    """Write the session and refresh its idle TTL (and the person's index, pruned). An existing
    session is only updated while it still exists: a request that was under way when its session
    was ended (sign-out elsewhere, a password change) never brings it back. False when it was gone."""
    now = int(time.time()) if now is None else now
    s.last = now
    key = _key(settings, s.uid, s.cookie)
    batch = store.batch()
    if new:
        batch.command("hset", key, mapping=_to_hash(s))
    else:
        flat = [x for item in _to_hash(s).items() for x in item]
        if not store.lua("hset_if_exists")(keys=[key], args=flat):
            return False
    batch.command("expire", key, _ttl(settings, s.created, now, signed_in=bool(s.uid)))
    if s.uid:
        index = keys.user_sessions(s.uid)
        batch.command("zadd", index, {_digest(settings, s.cookie): s.expires_at(settings)})
        batch.command("zremrangebyscore", index, "-inf", now)
        batch.command("expire", index, settings.session_max_seconds)
    batch.execute()
    return True


def needs_touch(s: Session, now: int) -> bool:
    return now - s.last >= TOUCH_SECONDS


def end(store: Store, settings: Settings, s: Session) -> None:
    """Sign out this session (the cookie stops working at once)."""
    digest = _digest(settings, s.cookie)
    if s.uid:
        store.lua("session_end")(keys=[keys.user_sessions(s.uid), keys.session(s.uid, digest)], args=[digest])
    else:
        store.redis.delete(keys.anonymous_session(digest))


def list_for(store: Store, uid: str, now: int | None = None) -> list[Session]:
    """The person's live sessions, most recently used first. ``cookie`` is empty in these: a listing
    never holds what would let someone else use a session."""
    now = int(time.time()) if now is None else now
    index = keys.user_sessions(uid)
    store.redis.zremrangebyscore(index, "-inf", now)
    digests = store.redis.zrange(index, 0, -1)
    if not digests:
        return []
    batch = store.batch()
    for digest in digests:
        batch.command("hgetall", keys.session(uid, digest))
    found: list[Session] = []
    gone: list[str] = []
    for digest, raw in zip(digests, batch.execute(), strict=True):
        s = _from_hash("", raw) if raw else None
        if s is None:
            gone.append(digest)
        else:
            s.digest = digest
            found.append(s)
    if gone:
        store.redis.zrem(index, *gone)  # ended early (idle): drop from the index
    return sorted(found, key=lambda s: s.last, reverse=True)


def digest_of(settings: Settings, cookie: str) -> str:
    """The name of a cookie's session in Redis (to keep one session while ending the others)."""
    return _digest(settings, cookie)


def end_all(store: Store, uid: str, *, keep: str | None = None, only_sid: str | None = None) -> list[Session]:
    """End the person's sessions (all, all but the one named ``keep`` (see ``digest_of``), or the one
    with public id ``only_sid``) in one script on the person's slot; the sessions that were ended."""
    ending = [
        s
        for s in list_for(store, uid)
        if s.digest != keep and (only_sid is None or secrets.compare_digest(s.sid, only_sid))
    ]
    if ending:
        store.lua("session_end")(
            keys=[keys.user_sessions(uid), *(keys.session(uid, s.digest) for s in ending)],
            args=[s.digest for s in ending],
        )
    return ending


def note_client(store: Store, settings: Settings, s: Session, client_id: str) -> None:
    """Remember that ``client_id`` was given an id_token in this session (back-channel logout)."""
    if s.uid and client_id not in s.clients:
        s.clients.append(client_id)
        key = _key(settings, s.uid, s.cookie)
        store.lua("hset_if_exists")(keys=[key], args=["clients", ",".join(s.clients[-50:])])
