"""The disclosure gate: the only code path through which a third party receives user data.

    token -> grant or installation -> app and installation status
          -> allowed fields = token scopes ∩ grant (or installation) scopes ∩ catalog-shareable
                              ∩ the person's ticked fields (grants)
          -> ledger record committed -> profile read for exactly those fields
          -> marshmallow schema built for exactly those fields -> response

The token check and the journal append are one Lua script in the app's slot (one round trip; the
logs' journals indexes live in the logs' slots, so one more only when a journal was not announced to
its index in the last minute; DESIGN invariants 1, 2 and 6): nothing is cached, so a revoked grant,
a disabled installation or a suspended app is refused by the very next request, and a refused
request writes no record. The record is committed (AOF ``appendfsync always``; WAIT when replicas
are configured) before any profile value is even read; if Redis cannot take it the request fails
with 503 and no data.

Keys the script derives from the token (grant, installation, pairwise map) all carry the tag of
``KEYS[1]``, so the script stays in one cluster slot.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from marshmallow import Schema
from marshmallow import fields as mf
from redis.cluster import RedisCluster

from broker.core.catalog import Catalog
from broker.core.hashing import keyed_hash
from broker.core.ids import ACCESS_PREFIX
from broker.core.ids import client_of as token_client
from broker.core.pairwise import pairwise_id
from broker.core.records import DisclosureRecord
from broker.errors import BearerError, NotFound, StorageUnavailable
from broker.ledger import logs as ledger_logs
from broker.observability import metrics
from broker.storage import keys
from broker.storage.breaker import CircuitOpen
from broker.storage.store import UNAVAILABLE, Store

# The keys gate_disclose.lua sets on the template for each person it records.
FILLED_BY_SCRIPT = frozenset({"id", "developer", "audience", "org", "person", "grant", "fields"})

log = logging.getLogger("broker.gate")

# The script is broker/storage/lua/gate_disclose.lua: the token rule of _validity.lua (shared with
# introspection and the token endpoint), then tenant isolation, the field allow-list and the journal
# append.


class InvalidToken(BearerError):
    """RFC 6750 3.1 ``invalid_token``: 401 with a ``WWW-Authenticate: Bearer`` challenge."""

    status = 401
    code = "invalid_token"
    title = "Invalid access token"

    def challenge(self) -> dict[str, str]:
        return {"error": "invalid_token", "error_description": self.detail}


class InsufficientScope(BearerError):
    """RFC 6750 3.1 ``insufficient_scope``: 403 naming the missing scope and where to grant it."""

    status = 403
    code = "insufficient_scope"
    title = "Insufficient scope"

    def challenge(self) -> dict[str, str]:
        return {"error": "insufficient_scope", "scope": str(self.extra.get("scope", ""))}


class WrongTokenKind(InsufficientScope):
    """A valid token of the other kind (an organization token on a person's endpoint, or the reverse):
    403 ``insufficient_scope`` like a missing scope, with the reason in the challenge, so a client
    does not take it for an expired token and refresh in a loop."""

    def challenge(self) -> dict[str, str]:
        return {**super().challenge(), "error_description": self.detail}


@dataclass(frozen=True)
class Disclosed:
    """What the gate allowed and recorded: serialize only ``fields`` of these people."""

    client_id: str
    kind: str
    subject: str
    grant_id: str
    fields: tuple[str, ...]
    # uid -> the pairwise id the gate already computed for each member it recorded (installations):
    # serializing reuses them instead of hashing again
    pairwise: dict[str, str] | None = None


def client_of(token: str) -> str:
    """The client id a token names (``brk_at_<client_id>.<secret>``); InvalidToken if malformed."""
    client_id = token_client(token, ACCESS_PREFIX)
    if client_id is None:
        raise InvalidToken("The access token is malformed")
    return client_id


def _scope_fields(catalog: Catalog) -> str:
    return json.dumps({name: sorted(catalog.fields_of([name])) for name in catalog.scopes})


# Voids that could not be written, or not confirmed by WAIT, are kept in this process and written
# again by the ledger sequencer thread (``retry_unconfirmed_voids``) until a WAIT confirms them: after
# a failover that puts them on the promoted primary, which may hold the record but not the first
# void. Kept for at most VOID_KEEP_SECONDS (then logged and given up).
VOID_TTL_SECONDS = 7 * 86400
VOID_KEEP_SECONDS = 600
VOID_MAX_PENDING = 100_000
VOID_RETRY_CHUNK = 1000
_unconfirmed: dict[tuple[str, str], tuple[int, float]] = {}  # (client, request) -> (records, since)
_unconfirmed_lock = threading.Lock()


def _write_voids(store: Store, voids: dict[tuple[str, str], int], wait_ms: int | None = None) -> None:
    """One round trip per app slot, then one WAIT; raises when not written or not confirmed."""
    pipe = store.redis.pipeline(transaction=False)
    now = time.time()
    for (client_id, request_id), records in voids.items():
        key = keys.journal_voids(client_id)
        pipe.hset(key, request_id, json.dumps({"time": now, "records": max(1, records)}))
        pipe.expire(key, VOID_TTL_SECONDS)
        pipe.sadd(keys.voids_index(), client_id)
    pipe.execute()
    slots = sorted({c for c, _ in voids})
    # one node: one WAIT covers every write before it; a cluster needs one per shard (slot) written
    for client_id in slots if isinstance(store.redis, RedisCluster) else slots[:1]:
        store.confirm_durable(keys.journal_voids(client_id), wait_ms)


def void_request(store: Store, client_id: str, request_id: str, records: int) -> bool:
    """Say that the journal records of ``request_id`` are not disclosures.

    Called when the request is refused after its records may have been written (WAIT failed, the
    write's outcome is unknown, or the response failed afterwards). The sequencer drops voided
    records, or, if one was already sequenced, appends a correction record. Never raises: a void
    that cannot be written and confirmed now is retried by the sequencer thread. Returns whether it
    was confirmed now.
    """
    try:
        # a short WAIT: the request is already refused; if replicas are slow, the sequencer thread
        # confirms the void later (full WAIT) rather than making every refusal twice as slow
        _write_voids(store, {(client_id, request_id): records}, wait_ms=min(store.wait_timeout_ms, 100))
    except (StorageUnavailable, redis.RedisError) as exc:
        with _unconfirmed_lock:
            if len(_unconfirmed) >= VOID_MAX_PENDING:  # a long outage: most of these wrote nothing
                log.error("request %s: too many unconfirmed voids; this one is not kept", request_id)
                return False
            _unconfirmed.setdefault((client_id, request_id), (records, time.time()))
        # an outage refuses every request: not one WARNING line each while the breaker is open
        level = logging.DEBUG if isinstance(exc, CircuitOpen) else logging.WARNING
        log.log(
            level, "request %s: records voided, void not confirmed yet (%s)", request_id, type(exc).__name__
        )
        return False
    log.warning("request %s: disclosure records not confirmed; voided", request_id)
    return True


def retry_unconfirmed_voids(store: Store) -> int:
    """Write again (up to VOID_RETRY_CHUNK of) the voids of this process that no WAIT confirmed yet;
    returns how many are left."""
    with _unconfirmed_lock:
        pending = dict(list(_unconfirmed.items())[:VOID_RETRY_CHUNK])
    if not pending:
        return 0
    try:
        _write_voids(store, {key: records for key, (records, _) in pending.items()})
    except (StorageUnavailable, redis.RedisError):
        now = time.time()
        with _unconfirmed_lock:
            for key, (_, since) in list(_unconfirmed.items()):
                if now - since > VOID_KEEP_SECONDS:
                    log.error("request %s: gave up confirming its void", key[1])
                    del _unconfirmed[key]
            return len(_unconfirmed)
    with _unconfirmed_lock:
        for key in pending:
            _unconfirmed.pop(key, None)
        return len(_unconfirmed)


def _voids_on_failure(client_of_first: Callable[[str], str]) -> Callable[[Callable[..., Any]], Any]:
    """A refused request leaves no disclosure behind: when storage fails after the records may have
    been written (WAIT did not confirm them, or the connection broke mid-call), void them, then let
    the 503 go out as before."""

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: Gate, first: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, first, *args, **kwargs)
            except (StorageUnavailable, *UNAVAILABLE):
                request_id = kwargs.get("request_id")
                if request_id:
                    records = len(kwargs.get("persons") or ()) if kwargs.get("kind") == "installation" else 1
                    void_request(self.store, client_of_first(first), str(request_id), records)
                raise

        return wrapper

    return decorate


class Gate:
    """One per app process; holds the registered script and the catalog's scope->fields map."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        token_hash_key: str,
        pairwise_key: str,
        *,
        ledger_logs: int | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.token_hash_key = token_hash_key
        self.pairwise_key = pairwise_key
        self._script = store.lua("gate_disclose")
        self._scope_fields = _scope_fields(catalog)
        self._list_fields = catalog.list_fields()
        self._configured_logs = ledger_logs
        self._logs: int | None = None

    def logs(self) -> int:
        """The ledger's number of logs (read from Redis once per process, see broker.ledger.logs)."""
        if self._logs is None:
            self._logs = ledger_logs.count(self.store, self._configured_logs)
        return self._logs

    def _announce(self, client_id: str, logs: Iterable[str]) -> None:
        """Add the app to the journals index of each log whose journal's announcement mark was
        absent. After the records: the sequencer's forget step looks at the
        journal again after removing an app, so it never loses one that is being written."""
        wanted = list(logs)
        if not wanted:
            return
        pipe = self.store.redis.pipeline(transaction=False)
        for name in wanted:
            pipe.sadd(keys.journals_index(name), client_id)
        try:
            pipe.execute()
        except (StorageUnavailable, *UNAVAILABLE) as exc:
            # The records are committed; the sequencer finds the journal by its periodic sweep
            # (``Sequencer.sweep``) or when the gate announces it again (the mark expires).
            log.warning("journals index not written for %s (%s)", client_id, type(exc).__name__)

    @_voids_on_failure(lambda token: client_of(token))
    def authorize_and_record(
        self,
        token: str,
        *,
        kind: str,
        required_scope: str,
        endpoint: str,
        request_id: str,
        org_id: str = "",
        persons: Sequence[str] = (),
    ) -> Disclosed:
        """Check the token and commit one journal record per person, atomically.

        ``persons`` are internal user ids (org tokens); for a person's token it is ignored and the
        token's own subject is disclosed.
        """
        try:
            client_id = client_of(token)
        except InvalidToken:
            metrics.gate_checked("malformed_token")
            raise
        token_key = keys.access_token(client_id, keyed_hash(self.token_hash_key, token))
        person_args: list[list[str]]
        if kind == "installation":
            person_args = [[uid, pairwise_id(self.pairwise_key, client_id, uid, org_id)] for uid in persons]
        else:
            person_args = [["", ""]]  # the script fills in the subject; pairwise id computed below
        # The script fills in the rest of each person's record (gate_disclose.lua).
        template = DisclosureRecord(
            time=time.time(),
            app=client_id,
            endpoint=endpoint,
            request_id=request_id,
            catalog_version=self.catalog.version,
            missing=FILLED_BY_SCRIPT,
        )
        script_keys = [token_key, keys.app(client_id)]
        script_args: list[Any] = [
            keys.app_tag(client_id),
            int(time.time()),
            kind,
            org_id,
            self._scope_fields,
            required_scope,
            json.dumps(template.public()),
            json.dumps(person_args),
            self.logs(),
            client_id,
        ]
        result = self.store.batch().script(self._script, script_keys, script_args).execute()[-1]
        status = result[0]
        metrics.gate_checked(status)
        if status == "invalid_token":
            raise InvalidToken(result[1])
        if status == "wrong_kind":
            raise WrongTokenKind(
                result[1],
                scope=required_scope,
                token_kind=kind,
                token_subject=org_id,
                client_id=client_id,
            )
        if status == "not_found":
            raise NotFound("No such organization")
        if status == "insufficient_scope":
            raise InsufficientScope(
                f"This request needs the scope {result[1]!r}",
                scope=result[1],
                token_kind=result[2],
                token_subject=result[3],
                client_id=client_id,
            )
        if status != "ok":  # pragma: no cover - the script returns one of the above
            raise RuntimeError(f"unexpected gate result {status!r}")
        self._announce(client_id, json.loads(result[5]) or ())  # before WAIT: a refusal still moves on
        self.store.confirm_durable(keys.app(client_id))
        metrics.disclosed(result[1], len(person_args))
        return Disclosed(
            client_id=client_id,
            kind=result[1],
            subject=result[2],
            grant_id=result[3],
            fields=tuple(json.loads(result[4])),
            pairwise={uid: pw for uid, pw in person_args} if kind == "installation" else None,
        )

    @_voids_on_failure(lambda client_id: client_id)
    def record_issued(
        self,
        client_id: str,
        *,
        developer_id: str,
        user_id: str,
        grant_id: str,
        fields: Sequence[str],
        endpoint: str,
        request_id: str,
    ) -> None:
        """Record a disclosure made by the token endpoint itself (the id_token's ``sub``).

        The token endpoint has already authenticated the client and loaded the grant, so no token
        check is needed; the record is still committed before the response leaves.
        """
        record = DisclosureRecord(
            id=f"{request_id}-1",
            time=time.time(),
            app=client_id,
            developer=developer_id,
            audience="individual",
            org=None,
            person=user_id,
            grant=grant_id,
            fields=tuple(sorted(fields)),
            endpoint=endpoint,
            request_id=request_id,
            catalog_version=self.catalog.version,
        )
        log_name = ledger_logs.log_of(user_id, self.logs())
        journal = keys.journal(client_id, log_name)
        pipe = self.store.redis.pipeline(transaction=False)
        if self.store.cluster:
            pipe.set(
                keys.journal_announced(client_id, log_name), "1", nx=True, ex=ledger_logs.ANNOUNCE_SECONDS
            )
        else:
            pipe.sadd(keys.journals_index(log_name), client_id)
        pipe.xadd(journal, record.to_hash())
        if pipe.execute()[0] and self.store.cluster:
            self._announce(client_id, [log_name])
        self.store.confirm_durable(journal)
        metrics.disclosed("id_token")

    # -- after the record is committed ---------------------------------------------------------

    def profiles(self, disclosed: Disclosed, uids: Iterable[str]) -> list[dict[str, Any]]:
        """Read only the allowed directory fields and serialize them through an allow-list schema."""
        uid_list = list(uids)
        directory_fields = [f for f in disclosed.fields if f not in DERIVED_FIELDS | CONSENT_FIELDS.keys()]
        org = disclosed.subject if disclosed.kind == "installation" else None
        pipe = self.store.redis.pipeline(transaction=False)
        for uid in uid_list:
            pipe.hmget(keys.user(uid), ["status", *directory_fields])
        org_reads = _org_reads(pipe, org, disclosed.fields, uid_list) if org and uid_list else 0
        rows = pipe.execute() if uid_list else []
        org_values = _org_values(disclosed.fields, uid_list, rows[len(uid_list) :]) if org_reads else {}
        schema = schema_for(disclosed.fields, self._list_fields)
        out = []
        for uid, row in zip(uid_list, rows[: len(uid_list)], strict=True):
            if row[0] != "active":
                continue  # deleted between the listing and now: nothing to show
            values: dict[str, Any] = dict(zip(directory_fields, row[1:], strict=True))
            if "user_id" in disclosed.fields:
                known = disclosed.pairwise.get(uid) if disclosed.pairwise else None
                values["user_id"] = known or pairwise_id(self.pairwise_key, disclosed.client_id, uid, org)
            values.update({f: CONSENT_FIELDS[f] for f in disclosed.fields if f in CONSENT_FIELDS})
            values.update({f: by_uid.get(uid) for f, by_uid in org_values.items()})
            out.append(schema.dump(values))
        return out


# Member fields the organization knows rather than the directory (scopes/organization.toml): the
# member's department names and the organization's name, read from the org's slot in the same
# pipeline as the profiles, and only when released.
DERIVED_FIELDS = frozenset({"departments", "org_name"})


def _org_reads(pipe: Any, org: str, released: Sequence[str], uids: list[str]) -> int:
    """Queue the org reads the released derived fields need; returns how many were queued."""
    queued = 0
    if "departments" in released:
        pipe.hmget(keys.org_member_departments(org), uids)
        pipe.hgetall(keys.org_departments(org))
        queued += 2
    if "org_name" in released:
        pipe.hget(keys.org(org), "name")
        queued += 1
    return queued


def _org_values(released: Sequence[str], uids: list[str], results: list[Any]) -> dict[str, dict[str, Any]]:
    """Field -> {uid: value} from the replies of :func:`_org_reads`, in the order they were queued."""
    out: dict[str, dict[str, Any]] = {}
    rest = iter(results)
    if "departments" in released:
        member_deps, tree = next(rest), next(rest)
        names: dict[str, str] = {}
        for dep_id, raw in (tree or {}).items():
            try:
                names[dep_id] = str(json.loads(raw).get("name", ""))
            except (ValueError, AttributeError):
                continue
        out["departments"] = {
            uid: sorted(names[d] for d in (deps or "").split() if d in names)
            for uid, deps in zip(uids, member_deps, strict=True)
        }
    if "org_name" in released:
        name = next(rest)
        out["org_name"] = dict.fromkeys(uids, name)
    return out


# Fields that are a permission, not directory data: present only while the person grants them, with
# this value (scopes/contact.toml).
CONSENT_FIELDS = {"contact_permission": "granted"}


@lru_cache(maxsize=64)
def schema_for(field_names: tuple[str, ...], list_fields: frozenset[str] = frozenset()) -> Schema:
    """A marshmallow schema with exactly these fields: serialization is driven by an allow-list.
    ``list_fields``: those that hold a list of strings (the catalog's ``type = "list"``)."""
    schema_cls = Schema.from_dict(
        {
            name: mf.List(mf.String(), allow_none=True) if name in list_fields else mf.String(allow_none=True)
            for name in field_names
        },
        name="Disclosure_" + "_".join(field_names),
    )
    return schema_cls()
