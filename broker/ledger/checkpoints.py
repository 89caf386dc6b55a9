"""Signed checkpoints: (tree size, root hash, time) as a compact JWS signed with the Ed25519 key.

Anyone can verify a checkpoint with the public keys at ``GET /ledger/v1/keys`` and then check
inclusion and consistency proofs against its root. The header's ``alg`` is ``EdDSA`` (RFC 8037);
checkpoints written by earlier releases say ``Ed25519`` (RFC 9864) and still verify here.
Each log signs its own checkpoints. Payload (JSON)::

    {"origin": "<issuer>/ledger/<log>", "log": "<log>", "tree_size": n,
     "root_hash": "<base64 SHA-256>", "timestamp": <unix seconds>, "kid": "<signing key id>"}

Checkpoints of the legacy log (earlier releases) have no ``log`` and the origin ``<issuer>/ledger``.

**Thinning** (:func:`thin`): a log signs a checkpoint every few seconds while records arrive. Those
older than ``BROKER_LEDGER_CHECKPOINT_RETENTION_HOURS`` are thinned to the newest of each hour, and
those older than that plus :data:`HOURLY_DAYS` days to the newest of each day; the first checkpoint
and every recent one stay. Any two checkpoints of an append-only log are consistent, and the
consistency proof between two kept ones is computed from the tree, so it stays provable (``broker
ledger verify`` checks each kept checkpoint against the one before). Positions in the list
(``/checkpoints?start=``) move down when older checkpoints are thinned.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from broker.config import Settings
from broker.core.keyring import LEDGER_ALG, LEDGER_SIGNING, LEDGER_VERIFYING, Keyring, ledger_key_set
from broker.ledger import storage
from broker.storage import keys
from broker.storage.store import Store

TYP = "broker-ledger-checkpoint+jws"


class CheckpointInvalid(Exception):
    """A checkpoint's signature, header or payload does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    jws: str
    tree_size: int
    root_hash: bytes
    timestamp: int
    kid: str
    position: int = -1  # place in the checkpoint list
    log: str = keys.LEGACY_LOG

    def as_json(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "checkpoint": self.jws,
            "tree_size": self.tree_size,
            "root_hash": b64(self.root_hash),
            "timestamp": self.timestamp,
            "kid": self.kid,
        }


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def unb64(value: str) -> bytes:
    return base64.b64decode(value.encode(), validate=True)


def public_jwks(keyring: Keyring) -> dict[str, Any]:
    """The Ed25519 keys checkpoints (and receipts) are signed with, retired ones included: a
    checkpoint signed years ago must still verify."""
    return keyring.ledger_jwks()


def sign(
    store: Store, keyring: Keyring, settings: Settings, log: str, *, now: int | None = None
) -> Checkpoint:
    """Sign the log's current tree head and append it to its list. Callers hold the log's lock."""
    tree_size = storage.size(store, log)
    root_hash = storage.RedisTree(store, log).root(tree_size)
    key = keyring.signing_key(LEDGER_ALG)
    payload = {
        "origin": f"{settings.issuer}/ledger/{log}",
        "log": log,
        "tree_size": tree_size,
        "root_hash": b64(root_hash),
        "timestamp": int(time.time()) if now is None else now,
        "kid": key.kid,
    }
    token = jws.serialize_compact(
        {"alg": LEDGER_ALG, "kid": key.kid, "typ": TYP},
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode(),
        key,
        registry=LEDGER_SIGNING,
    )
    position = int(store.redis.rpush(keys.ledger_checkpoints(log), token)) - 1
    return Checkpoint(token, tree_size, root_hash, int(payload["timestamp"]), key.kid, position, log)


def parse(token: str, position: int = -1) -> Checkpoint:
    """Decode without checking the signature (for our own stored list); see :func:`verify`."""
    try:
        payload_b64 = token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
        return _from_payload(token, payload, position)
    except (IndexError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointInvalid(f"checkpoint is not well-formed ({exc})") from None


def verify(token: str, jwks: dict[str, Any], position: int = -1) -> Checkpoint:
    """Check the Ed25519 signature (``alg`` ``EdDSA``, or ``Ed25519`` from earlier releases) against
    the published keys, then decode."""
    try:
        obj = jws.deserialize_compact(token, ledger_key_set(jwks), registry=LEDGER_VERIFYING)
    except (JoseError, ValueError, TypeError) as exc:
        raise CheckpointInvalid(f"signature does not verify ({type(exc).__name__}: {exc})") from None
    headers = obj.headers()
    if headers.get("typ") != TYP:
        raise CheckpointInvalid(f"unexpected typ {headers.get('typ')!r}")
    try:
        checkpoint = _from_payload(token, json.loads(obj.payload), position)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointInvalid(f"payload is not well-formed ({exc})") from None
    if checkpoint.kid != headers.get("kid"):
        raise CheckpointInvalid("payload kid differs from the header kid")
    return checkpoint


def _from_payload(token: str, payload: dict[str, Any], position: int) -> Checkpoint:
    tree_size = payload["tree_size"]
    timestamp = payload["timestamp"]
    if not isinstance(tree_size, int) or tree_size < 0 or not isinstance(timestamp, int):
        raise ValueError("tree_size and timestamp must be non-negative integers")
    root_hash = unb64(payload["root_hash"])
    if len(root_hash) != 32:
        raise ValueError("root_hash must be 32 bytes")
    log = payload.get("log", keys.LEGACY_LOG)
    if not isinstance(log, str):
        raise ValueError("log must be a string")
    return Checkpoint(token, tree_size, root_hash, timestamp, str(payload["kid"]), position, log)


def count(store: Store, log: str) -> int:
    return int(store.redis.llen(keys.ledger_checkpoints(log)))


def latest(store: Store, log: str) -> Checkpoint | None:
    token = store.redis.lindex(keys.ledger_checkpoints(log), -1)
    return parse(token, count(store, log) - 1) if token else None


def latest_of(store: Store, logs: list[str]) -> dict[str, Checkpoint]:
    """The newest checkpoint of each log that has one, in one round trip (a pipeline)."""
    pipe = store.redis.pipeline(transaction=False)
    for log in logs:
        pipe.lindex(keys.ledger_checkpoints(log), -1)
        pipe.llen(keys.ledger_checkpoints(log))
    answers = pipe.execute() if logs else []
    out = {}
    for log, token, n in zip(logs, answers[::2], answers[1::2], strict=True):
        if token:
            out[log] = parse(token, int(n) - 1)
    return out


def page(store: Store, log: str, start: int, limit: int) -> list[Checkpoint]:
    tokens = store.redis.lrange(keys.ledger_checkpoints(log), start, start + limit - 1)
    return [parse(token, start + i) for i, token in enumerate(tokens)]


HOURLY_DAYS = 30  # past the retention: one checkpoint per hour for this long, then one per day


def thin(store: Store, log: str, *, retention_seconds: int, now: float | None = None) -> int:
    """Thin the log's checkpoints older than the retention; returns how many were removed.

    Callers hold the log's sequencer lock (nothing else removes checkpoints; a checkpoint appended
    meanwhile is past the part rewritten, which LTRIM keeps)."""
    now = time.time() if now is None else now
    key = keys.ledger_checkpoints(log)
    r = store.redis
    old: list[str] = []
    start = 0
    while True:  # the prefix of checkpoints older than the retention (timestamps never decrease)
        chunk = r.lrange(key, start, start + 999)
        for token in chunk:
            if parse(token).timestamp >= now - retention_seconds:
                break
            old.append(token)
        else:
            if len(chunk) == 1000:
                start += 1000
                continue
        break
    if len(old) < 2:
        return 0
    daily_before = now - retention_seconds - HOURLY_DAYS * 86400
    kept: dict[tuple[str, int], str] = {}
    for position, token in enumerate(old):
        ts = parse(token).timestamp
        bucket = (
            ("first", 0)
            if position == 0
            else ("day", ts // 86400)
            if ts < daily_before
            else ("hour", ts // 3600)
        )
        kept[bucket] = token  # the newest of each bucket
    if len(kept) == len(old):
        return 0
    keep = [t for t in old if t in set(kept.values())]
    pipe = r.pipeline(transaction=True)  # one key: one slot
    pipe.ltrim(key, len(old), -1)
    pipe.lpush(key, *reversed(keep))
    pipe.execute()
    return len(old) - len(keep)
