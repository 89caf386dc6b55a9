"""Webhook delivery of the event outbox (``broker worker``): signed, at-least-once, ordered per app.

How it works, and why:

* Each app's outbox is a stream (``keys.outbox``) written atomically with the state change by
  ``broker.events.outbox.emit``. A per-app cursor (``keys.webhook_cursor``) holds the stream id of
  the last entry that is finished (delivered with a 2xx, or dead-lettered). The worker always sends
  the oldest entry after the cursor and moves the cursor only after a 2xx: that gives per-app order
  and at-least-once delivery (a crash between the 2xx and the cursor update resends the same event,
  with the same ``id``; receivers de-duplicate on it).
* One worker at a time delivers for an app: a lease key with a TTL longer than the request timeout
  (``keys.webhook_lease``). A worker killed mid-delivery leaves a lease that expires by itself.
* A failure schedules a retry after a random wait of up to ``min(cap, base * 2^(attempt-1))``
  (exponential backoff, full jitter). After ``BROKER_WEBHOOK_MAX_ATTEMPTS`` the event goes to the
  app's dead-letter hash and the next event is tried; ``replay`` puts it back in the outbox,
  ``purge`` deletes it.
* Nothing grows without bound (docs/retention.md): dead letters are kept
  ``BROKER_WEBHOOK_DEAD_RETENTION_SECONDS`` and at most ``BROKER_WEBHOOK_DEAD_MAX`` per app, trimmed
  on every new dead letter and by the worker's periodic :meth:`Worker.sweep`, which also moves the
  oldest pending events beyond ``BROKER_WEBHOOK_OUTBOX_MAXLEN`` to the dead letters; delivered
  events leave the outbox; the attempt log is capped at about ``LOG_MAXLEN`` entries.
* Apps are delivered concurrently from a thread pool, so a slow or failing receiver never holds
  up another app.
* Every attempt is logged in a capped stream (``keys.webhook_log``) and the head event's state in a
  hash (``keys.webhook_status``) for the developer console.

Wire format (Standard Webhooks, https://www.standardwebhooks.com/)::

    POST <webhook_url>
    Content-Type: application/json
    webhook-id: evt_...                      (the event id: the same on every retry)
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}")>
                       (space-separated, a second ``v1,...`` with the previous secret while a
                       rotation overlaps)
    Broker-Event-Id, Broker-Signature        (deprecated, see below)

    {"id": "evt_...", "type": "grant.revoked", "time": 1700000000.5, "data": {...}}

``key`` is the secret's HMAC key (broker/events/webhook_secrets.py): the base64-decoded part of a
``whsec_...`` secret, or the UTF-8 bytes of a ``brk_whsec_...`` secret issued by an earlier
release. Receivers verify with any Standard Webhooks library (``standardwebhooks`` on PyPI).

Transition: the broker's own header from before Standard Webhooks,
``Broker-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret string, f"{t}.{body}")>`` (and
``Broker-Event-Id``), is still sent alongside, unchanged, for this release only, so receivers that
copied :func:`verify_signature` keep working while they move to a Standard Webhooks library. It will
be removed in the next release.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
import requests

from broker.core.sealing import Sealer, SealingError
from broker.errors import NotFound, ValidationFailed
from broker.events import egress, webhook_secrets
from broker.observability import metrics
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

log = logging.getLogger("broker.webhooks")

SIGNATURE_HEADER = "Broker-Signature"  # deprecated: sent for one more release beside the standard ones
EVENT_ID_HEADER = "Broker-Event-Id"  # deprecated, as above
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
USER_AGENT = "broker-webhooks/1"
LOG_MAXLEN = 1000
SCAN_BATCH = 500
CONCURRENCY = 8
_ERROR_MAX = 200


# --- signatures -----------------------------------------------------------------------------------


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def standard_signature(msg_id: str, timestamp: int, body: bytes | str, *secrets: str) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC>`` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + _as_bytes(body)
    macs = [hmac.new(webhook_secrets.key_bytes(s), signed, hashlib.sha256).digest() for s in secrets]
    return " ".join(f"v1,{base64.b64encode(mac).decode()}" for mac in macs)


def signed_headers(msg_id: str, timestamp: int, body: bytes, secret: str, *previous: str) -> dict[str, str]:
    """Every header that authenticates one delivery attempt (standard ones, plus the deprecated pair)."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: standard_signature(msg_id, timestamp, body, secret, *previous),
        EVENT_ID_HEADER: msg_id,
        SIGNATURE_HEADER: signature_header(secret, body, timestamp, *previous),
    }


def signature_header(secret: str, body: bytes | str, timestamp: int, *previous: str) -> str:
    """Deprecated ``Broker-Signature``: ``t=<timestamp>,v1=<hex>``; with ``previous`` secrets
    (rotation) one ``v1`` per secret."""
    signed = f"{timestamp}.".encode() + _as_bytes(body)
    macs = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in (secret, *previous)]
    return ",".join([f"t={timestamp}", *(f"v1={m}" for m in macs)])


def _previous_secret(fields: dict[str, Any], now: float) -> list[str]:
    """The rotated-out secret, while its overlap lasts (``webhook_secret_previous`` and optional
    ``webhook_secret_previous_expires`` unix time in the app hash)."""
    old = fields.get("webhook_secret_previous") or ""
    expires = fields.get("webhook_secret_previous_expires") or ""
    if not old or (expires.isdigit() and int(expires) <= now):
        return []
    return [old]


def verify_signature(
    secret: str, header: str | None, body: bytes | str, tolerance: int = 300, now: float | None = None
) -> bool:
    """Deprecated (use a Standard Webhooks library on the ``webhook-*`` headers).

    True when ``header`` is a valid ``Broker-Signature`` for ``body`` under ``secret`` and its
    timestamp is within ``tolerance`` seconds of ``now`` (replay protection). Several ``v1`` values
    are allowed (one per secret while a secret is being rotated)."""
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature_header(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates)


# --- retry policy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    base_seconds: float
    cap_seconds: float

    def ceiling(self, attempt: int) -> float:
        return float(min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, ceiling] (spreads a burst of retries after an outage)."""
        return (rng or random).uniform(0, self.ceiling(attempt))


# Storage scripts (all keys share the app's hash tag): broker/storage/lua/webhook_commit.lua,
# webhook_redeliver.lua (replay), webhook_dead_purge.lua, webhook_sweep.lua (retention) and
# delete_if_equals.lua (the lease).


class UnknownDeadLetter(NotFound):
    """An event id that is not one of the app's dead letters (nothing was changed)."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"no failed delivery {event_id!r} for this app")
        self.event_id = event_id


MAX_IDS = 1000  # event ids in one replay or purge request
_MAX_ID_LENGTH = 200


def _select(event_ids: Sequence[str] | None) -> list[str]:
    """``['all']`` for every dead letter, else ``['ids', id, ...]`` (ids that cannot exist are unknown)."""
    if event_ids is None:
        return ["all"]
    if not 1 <= len(event_ids) <= MAX_IDS:
        raise ValidationFailed(f"name between 1 and {MAX_IDS} event ids")
    for event_id in event_ids:
        if not event_id or len(event_id) > _MAX_ID_LENGTH:
            raise UnknownDeadLetter(event_id[:_MAX_ID_LENGTH])
    return ["ids", *event_ids]


def _audit(client_id: str, action: str, ids: list[str], by: str) -> None:
    """Who replayed or purged which dead letters (event ids only: never an event's data or a secret)."""
    shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
    log.info("webhook dead letters %s for %s by %s: %s event(s) %s", action, client_id, by, len(ids), shown)


def replay(store: Store, client_id: str, event_ids: Sequence[str] | None, *, by: str) -> list[str]:
    """Put dead letters back at the end of the app's outbox, oldest first (every one when
    ``event_ids`` is None). Each starts a new attempt series under its own event id, after the
    events already queued: order is kept among live events only. All or nothing: an id that is not
    a dead letter raises :class:`UnknownDeadLetter` and nothing changes. Returns the ids requeued;
    the replay is recorded in the attempt log and the service log (``by`` names who asked)."""
    done = store.lua("webhook_redeliver")(
        keys=[
            keys.webhook_dead(client_id),
            keys.webhook_dead_index(client_id),
            keys.outbox(client_id),
            keys.webhook_log(client_id),
        ],
        args=[int(time.time()), LOG_MAXLEN, by, *_select(event_ids)],
    )
    if not int(done[0]):
        raise UnknownDeadLetter(str(done[1]))
    ids = [str(i) for i in done[1:]]
    if ids:
        _audit(client_id, "replayed", ids, by)
    return ids


def purge(store: Store, client_id: str, event_ids: Sequence[str] | None, *, by: str) -> list[str]:
    """Delete dead letters for good (every one when ``event_ids`` is None). All or nothing, as
    :func:`replay`; recorded in the attempt log and the service log. Returns the ids deleted."""
    done = store.lua("webhook_dead_purge")(
        keys=[keys.webhook_dead(client_id), keys.webhook_dead_index(client_id), keys.webhook_log(client_id)],
        args=[int(time.time()), LOG_MAXLEN, by, *_select(event_ids)],
    )
    if not int(done[0]):
        raise UnknownDeadLetter(str(done[1]))
    ids = [str(i) for i in done[1:]]
    if ids:
        _audit(client_id, "purged", ids, by)
    return ids


def redeliver(store: Store, client_id: str, event_id: str, *, by: str = "developer") -> bool:
    """Replay one dead letter (see :func:`replay`). Returns False if it is not a dead letter."""
    try:
        replay(store, client_id, [event_id], by=by)
    except UnknownDeadLetter:
        return False
    return True


def dead_letters(store: Store, client_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first: ``{"event": {...}, "attempts", "last_status", "last_error", "dead_at"}``."""
    ids = store.redis.zrevrange(keys.webhook_dead_index(client_id), 0, limit - 1)
    if not ids:
        return []
    docs = store.redis.hmget(keys.webhook_dead(client_id), ids)
    out = []
    for event_id, raw in zip(ids, docs, strict=True):
        if raw is None:
            continue
        doc = json.loads(raw)
        try:
            doc["event"] = json.loads(doc["event"])
        except ValueError:
            doc["event"] = {"id": event_id, "raw": doc["event"]}  # a malformed outbox entry, kept as is
        if not isinstance(doc["event"], dict) or "id" not in doc["event"]:
            doc["event"] = {"id": event_id, "raw": str(doc["event"])}
        out.append(doc)
    return out


def dead_count(store: Store, client_id: str) -> int:
    """How many dead letters the app has."""
    return int(store.redis.zcard(keys.webhook_dead_index(client_id)))


def delivery_status(store: Store, client_id: str) -> dict[str, str]:
    """The head event's delivery state (state, event_id, attempts, last_status, last_error,
    next_attempt_at, last_success_at, ...) for the developer console."""
    status: dict[str, str] = store.redis.hgetall(keys.webhook_status(client_id))
    return status


def recent_attempts(store: Store, client_id: str, count: int = 50) -> list[dict[str, str]]:
    """The last delivery attempts, newest first (event, attempt, status, error, outcome, time)."""
    entries = store.redis.xrevrange(keys.webhook_log(client_id), "+", "-", count=count)
    return [dict(fields, id=entry_id) for entry_id, fields in entries]


# --- the worker -----------------------------------------------------------------------------------


def _wire_body(event: dict[str, Any]) -> bytes:
    wire = {"id": event["id"], "type": event["type"], "time": event["time"], "data": event.get("data", {})}
    return json.dumps(wire, separators=(",", ":"), ensure_ascii=False).encode()


def _describe(exc: BaseException) -> str:
    """A short error text without the URL (it may carry a token in its query)."""
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


class Worker:
    """Delivers every app's outbox. ``run_once`` for tests and ``--once``; ``run`` until stopped."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        concurrency: int = CONCURRENCY,
        rng: random.Random | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sealer = sealer or webhook_secrets.sealer_for(settings)
        # Every attempt resolves the host again, refuses internal destinations and connects to the
        # address it checked (broker.events.egress); never through an environment proxy.
        self.session = egress.guard(
            session or requests.Session(), allow_private=settings.webhook_allow_private
        )
        self.session.headers["User-Agent"] = USER_AGENT
        self.backoff = Backoff(settings.webhook_backoff_base_ms / 1000, settings.webhook_backoff_cap_seconds)
        self.timeout = settings.webhook_timeout_seconds
        self.lease_ms = (settings.webhook_timeout_seconds + 2) * 1000
        self.rng = rng or random.SystemRandom()
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook")
        self._in_flight: dict[str, Future[str]] = {}
        self._commit = store.lua("webhook_commit")
        self._release = store.lua("delete_if_equals")

    # -- scheduling ------------------------------------------------------------------------------

    def _apps(self) -> Iterator[list[str]]:
        start = 0
        while True:
            batch: list[str] = self.store.redis.zrange(keys.apps_all(), start, start + SCAN_BATCH - 1)
            if not batch:
                return
            yield batch
            start += SCAN_BATCH

    def _with_work(self, batch: list[str]) -> list[str]:
        """Apps whose outbox has an entry after the cursor (one round trip per batch)."""
        pipe = self.store.redis.pipeline(transaction=False)
        for client_id in batch:
            pipe.get(keys.webhook_cursor(client_id))
            pipe.xrevrange(keys.outbox(client_id), "+", "-", count=1)
        replies = pipe.execute()
        out = []
        for i, client_id in enumerate(batch):
            cursor, last = replies[2 * i], replies[2 * i + 1]
            if last and (cursor is None or _after(last[0][0], cursor)):
                out.append(client_id)
        return out

    def submit_due(self) -> list[Future[str]]:
        """Start a delivery task for every app with pending events that has none running."""
        self._in_flight = {c: f for c, f in self._in_flight.items() if not f.done()}
        started = []
        for batch in self._apps():
            for client_id in self._with_work(batch):
                if client_id in self._in_flight:
                    continue
                future = self.pool.submit(self._guarded, client_id)
                self._in_flight[client_id] = future
                started.append(future)
        return started

    def run_once(self) -> list[str]:
        """One scan; waits for the deliveries it started. Returns their outcomes."""
        return [f.result() for f in self.submit_due()]

    def run(self, stop: threading.Event) -> None:
        poll = self.settings.webhook_poll_ms / 1000
        next_sweep = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = time.monotonic() + self.settings.webhook_sweep_seconds
                self.submit_due()
            except redis.RedisError as exc:
                log.error("webhook worker: redis unavailable (%s); retrying", type(exc).__name__)
            except RuntimeError:
                # The interpreter is exiting and has shut the delivery pool down: stop quietly.
                log.info("webhook worker: shutting down")
                return
            stop.wait(poll)
        self.close()

    # -- retention -------------------------------------------------------------------------------

    def _dead_cutoff(self, now: float) -> str:
        """Dead letters dead before this time (unix seconds) are past their retention."""
        return f"{now - self.settings.webhook_dead_retention_seconds:.6f}"

    def sweep(self, now: float | None = None) -> dict[str, int]:
        """The periodic retention pass over every app (``run`` does it every
        BROKER_WEBHOOK_SWEEP_SECONDS): dead letters past BROKER_WEBHOOK_DEAD_RETENTION_SECONDS or
        beyond BROKER_WEBHOOK_DEAD_MAX are deleted, and pending events beyond
        BROKER_WEBHOOK_OUTBOX_MAXLEN move to the dead letters. One pipelined look per batch of
        apps; the script runs only for the apps that need it. Returns the totals."""
        when = time.time() if now is None else now
        cutoff = self._dead_cutoff(when)
        bound = self.settings.webhook_outbox_maxlen
        script = self.store.lua("webhook_sweep")
        totals = {"apps": 0, "dead_trimmed": 0, "overflowed": 0}
        for batch in self._apps():
            pipe = self.store.redis.pipeline(transaction=False)
            for client_id in batch:
                pipe.zrange(keys.webhook_dead_index(client_id), 0, 0, withscores=True)
                pipe.zcard(keys.webhook_dead_index(client_id))
                pipe.xlen(keys.outbox(client_id))
            replies = pipe.execute()
            for i, client_id in enumerate(batch):
                oldest, count, length = replies[3 * i : 3 * i + 3]
                expired = bool(oldest) and oldest[0][1] < float(cutoff)
                if not (expired or count > self.settings.webhook_dead_max or length > bound):
                    continue
                trimmed, moved = script(
                    keys=[
                        keys.webhook_lease(client_id),
                        keys.webhook_cursor(client_id),
                        keys.webhook_status(client_id),
                        keys.outbox(client_id),
                        keys.webhook_dead(client_id),
                        keys.webhook_dead_index(client_id),
                    ],
                    args=[int(when), f"{when:.6f}", cutoff, self.settings.webhook_dead_max, bound],
                )
                totals["apps"] += 1
                totals["dead_trimmed"] += int(trimmed)
                totals["overflowed"] += int(moved)
                if int(moved):
                    log.warning(
                        "webhook outbox of %s over %s events: the %s oldest moved to the dead letters",
                        client_id,
                        bound,
                        moved,
                    )
                if int(trimmed):
                    log.info(
                        "webhook dead letters of %s: %s past retention or count deleted", client_id, trimmed
                    )
        return totals

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.session.close()

    def _guarded(self, client_id: str) -> str:
        try:
            return metrics.webhook_outcome(self.deliver_next(client_id))
        except redis.RedisError as exc:
            log.error("webhook delivery for %s: redis error (%s)", client_id, type(exc).__name__)
            return metrics.webhook_outcome("error")
        except Exception:
            log.exception("webhook delivery for %s failed unexpectedly", client_id)
            return metrics.webhook_outcome("error")

    # -- one delivery ------------------------------------------------------------------------------

    def deliver_next(self, client_id: str, now: float | None = None) -> str:
        """Try the oldest pending event of ``client_id`` once. Returns the outcome: ``idle``,
        ``waiting`` (backoff not over), ``busy`` (another worker holds the app), ``undeliverable``
        (no webhook URL), ``delivered``, ``retry`` or ``dead``."""
        r = self.store.redis
        token = uuid.uuid4().hex
        if not r.set(keys.webhook_lease(client_id), token, nx=True, px=self.lease_ms):
            return "busy"
        try:
            return self._deliver_leased(client_id, token, time.time() if now is None else now)
        finally:
            self._release(keys=[keys.webhook_lease(client_id)], args=[token])

    def _deliver_leased(self, client_id: str, token: str, now: float) -> str:
        r = self.store.redis
        cursor = r.get(keys.webhook_cursor(client_id))
        entries = r.xrange(keys.outbox(client_id), f"({cursor}" if cursor else "-", "+", count=1)
        if not entries:
            return "idle"
        stream_id, fields = entries[0]
        status = r.hgetall(keys.webhook_status(client_id))
        same_head = status.get("stream_id") == stream_id
        if same_head and float(status.get("next_attempt_at") or 0) > now:
            return "waiting"
        names = [
            "webhook_url",
            "webhook_secret",
            "webhook_secret_previous",
            "webhook_secret_previous_expires",
        ]
        app_fields = dict(zip(names, r.hmget(keys.app(client_id), names), strict=True))
        try:
            for name in webhook_secrets.FIELDS:
                app_fields[name] = webhook_secrets.open_field(self.sealer, client_id, name, app_fields[name])
        except SealingError as exc:
            # Fail closed: nothing is sent unsigned; the event waits until the right keys are loaded.
            log.error("webhook delivery for %s: the webhook secret does not open (%s)", client_id, exc)
            r.hset(
                keys.webhook_status(client_id),
                mapping={
                    "state": "undeliverable",
                    "last_error": "the webhook secret cannot be opened with the configured sealing keys",
                    "last_attempt_at": str(int(now)),
                },
            )
            return "undeliverable"
        url, secret = app_fields["webhook_url"], app_fields["webhook_secret"]
        if not url or not secret:
            pipe = r.pipeline(transaction=True)
            pipe.hset(
                keys.webhook_status(client_id),
                mapping={
                    "state": "undeliverable",
                    "last_error": "the app has no webhook URL or secret",
                    "last_attempt_at": str(int(now)),
                },
            )
            pipe.xtrim(keys.outbox(client_id), maxlen=self.settings.webhook_outbox_maxlen, approximate=False)
            pipe.execute()
            return "undeliverable"
        try:
            event = json.loads(fields["e"])
            body = _wire_body(event)
        except (KeyError, ValueError, TypeError):
            # A malformed entry can never be delivered: dead-letter it at once rather than block the app.
            return self._finish(
                client_id,
                token,
                "dead",
                stream_id,
                {"id": f"malformed:{stream_id}"},
                fields.get("e", ""),
                self.settings.webhook_max_attempts,
                "",
                "malformed event",
                now,
            )
        attempt = (int(status.get("attempts") or 0) if same_head else 0) + 1
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            **signed_headers(event["id"], timestamp, body, secret, *_previous_secret(app_fields, now)),
        }
        code: int | None = None
        error = ""
        try:
            response = self.session.post(
                url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True
            )
            code = response.status_code
            response.close()
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except egress.DestinationRefused:
            error = egress.REFUSED  # one text for every refused or unresolvable destination
        except requests.RequestException as exc:
            error = _describe(exc)
        raw = fields["e"]
        if code is not None and 200 <= code < 300:
            log.info(
                "webhook %s delivered to %s (HTTP %s, attempt %s)", event["id"], client_id, code, attempt
            )
            return self._finish(client_id, token, "ok", stream_id, event, raw, attempt, str(code), "", now)
        if attempt >= self.settings.webhook_max_attempts:
            log.warning(
                "webhook %s for %s dead-lettered after %s attempts (%s)",
                event["id"],
                client_id,
                attempt,
                error,
            )
            return self._finish(
                client_id, token, "dead", stream_id, event, raw, attempt, str(code or ""), error, now
            )
        log.info("webhook %s for %s failed (%s), attempt %s", event["id"], client_id, error, attempt)
        return self._finish(
            client_id,
            token,
            "retry",
            stream_id,
            event,
            raw,
            attempt,
            str(code or ""),
            error,
            now,
            next_at=now + self.backoff.delay(attempt, self.rng),
        )

    def _finish(
        self,
        client_id: str,
        token: str,
        mode: str,
        stream_id: str,
        event: dict[str, Any],
        raw: str,
        attempt: int,
        code: str,
        error: str,
        now: float,
        next_at: float = 0.0,
    ) -> str:
        dead_doc = ""
        if mode == "dead":
            dead_doc = json.dumps(
                {
                    "event": raw,
                    "attempts": attempt,
                    "last_status": code,
                    "last_error": error[:_ERROR_MAX],
                    "dead_at": int(now),
                }
            )
        done = self._commit(
            keys=[
                keys.webhook_lease(client_id),
                keys.webhook_cursor(client_id),
                keys.webhook_status(client_id),
                keys.webhook_log(client_id),
                keys.outbox(client_id),
                keys.webhook_dead(client_id),
                keys.webhook_dead_index(client_id),
            ],
            args=[
                token,
                mode,
                stream_id,
                event["id"],
                attempt,
                code,
                error[:_ERROR_MAX],
                f"{next_at:.3f}",
                int(now),
                LOG_MAXLEN,
                dead_doc,
                f"{now:.6f}",
                self._dead_cutoff(now),
                self.settings.webhook_dead_max,
            ],
        )
        if not int(done):
            return "busy"  # our lease was lost to another worker; it owns the outcome now
        return {"ok": "delivered", "retry": "retry", "dead": "dead"}[mode]


def _after(a: str, b: str) -> bool:
    """Stream id ``a`` is newer than ``b``."""
    am, _, aseq = a.partition("-")
    bm, _, bseq = b.partition("-")
    return (int(am), int(aseq or 0)) > (int(bm), int(bseq or 0))
