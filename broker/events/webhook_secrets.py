"""Webhook signing secrets: their format (Standard Webhooks ``whsec_``) and their storage (sealed).

Format. A secret issued by this release is ``whsec_`` + standard base64 of 32 random bytes; those
bytes are the HMAC-SHA256 key (what every Standard Webhooks library expects). A secret issued by
an earlier release looks like ``brk_whsec_<43 url-safe characters>`` and keeps working unchanged:
its HMAC key is the UTF-8 bytes of the whole string, so its Standard Webhooks form is ``whsec_`` +
base64 of those bytes (:func:`standard_form`). A receiver can pass either the ``whsec_`` form or
the old string's bytes (``Webhook(old.encode())``) to the ``standardwebhooks`` library.

Storage. The app hash (``keys.app``) holds ``webhook_secret`` and, while a rotation overlaps,
``webhook_secret_previous``, each sealed (:mod:`broker.core.sealing`) with the context
``webhook_secret|<client_id>|<field>``. A clear value written by an earlier release is still read
until :func:`seal_existing_webhook_secrets` (a ``broker migrate`` step) has sealed it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import redis

from broker.core.sealing import Sealer, is_sealed
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

log = logging.getLogger("broker.webhooks")

STANDARD_PREFIX = "whsec_"  # the Standard Webhooks type prefix
LEGACY_PREFIX = "brk_whsec_"  # the prefix of secrets issued before Standard Webhooks
KEY_BYTES = 32
FIELDS = ("webhook_secret", "webhook_secret_previous")
_BATCH = 500


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes."""
    return STANDARD_PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_bytes(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded bytes of ``whsec_<base64>``; for a secret issued before
    Standard Webhooks (``brk_whsec_...``, or anything else), its UTF-8 bytes."""
    if secret.startswith(STANDARD_PREFIX):
        try:
            return base64.b64decode(secret[len(STANDARD_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def standard_form(secret: str) -> str:
    """The ``whsec_`` form of any secret (a legacy secret's bytes, base64-encoded)."""
    if secret.startswith(STANDARD_PREFIX):
        return secret
    return STANDARD_PREFIX + base64.b64encode(key_bytes(secret)).decode()


def sealer_for(settings: Settings) -> Sealer:
    """The process-wide sealer of ``BROKER_SEALING_KEYS_FILE`` (created in development only)."""
    return Sealer.shared(settings.sealing_keys_file, create=not settings.production)


def context(client_id: str, field: str) -> str:
    return f"webhook_secret|{client_id}|{field}"


def seal(sealer: Sealer, client_id: str, field: str, secret: str) -> str:
    return sealer.seal(secret, context(client_id, field)) if secret else ""


def open_field(sealer: Sealer, client_id: str, field: str, stored: str | None) -> str:
    """The clear secret from a stored field (sealed, or clear from an earlier release); "" if none."""
    if not stored:
        return ""
    return sealer.open(stored, context(client_id, field))


# -- converting stored values (migration and key rotation) -------------------------------------------


def _app_ids(store: Store) -> Iterator[str]:
    start = 0
    while True:
        batch: list[str] = store.redis.zrange(keys.apps_all(), start, start + _BATCH - 1)
        if not batch:
            return
        yield from batch
        start += _BATCH


def _reseal_where(store: Store, sealer: Sealer, needs: Callable[[str], bool]) -> int:
    """Re-seal (with the current key) every stored secret for which ``needs(stored)``. Each app hash
    is changed under WATCH on that one key (cluster-safe: one slot per transaction), so a concurrent
    rotation or a second run is never overwritten; running it again changes nothing."""
    changed = 0
    for client_id in _app_ids(store):
        key = keys.app(client_id)
        with store.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    stored = dict(zip(FIELDS, pipe.hmget(key, list(FIELDS)), strict=True))
                    updates = {
                        field: seal(sealer, client_id, field, open_field(sealer, client_id, field, value))
                        for field, value in stored.items()
                        if value and needs(value)
                    }
                    if not updates:
                        pipe.unwatch()
                        break
                    pipe.multi()
                    pipe.hset(key, mapping=updates)
                    pipe.execute()
                    changed += len(updates)
                    break
                except redis.WatchError:
                    continue
    return changed


def rewrite_append_only_files(store: Store) -> bool:
    """Ask Redis (every node of a cluster) to rewrite its append-only file, so that the history of
    values just replaced (clear secrets, or values sealed with a retired key) leaves the AOF too.
    Best effort: False when the server refuses (a managed Redis may forbid BGREWRITEAOF)."""
    try:
        if store.cluster:
            # every node by name (primaries and replicas each keep their own AOF)
            store.redis.execute_command("BGREWRITEAOF", target_nodes=list(store.redis.get_nodes()))
        else:
            store.redis.execute_command("BGREWRITEAOF")
    except redis.ResponseError as exc:
        log.warning("could not start an append-only file rewrite (%s): run BGREWRITEAOF yourself", exc)
        return False
    return True


def seal_existing_webhook_secrets(store: Store, sealer: Sealer) -> int:
    """Seal every webhook secret still stored in clear (written by the previous release). Returns how
    many values it sealed; idempotent (a second run returns 0) and safe beside a running server.
    When it sealed anything it asks Redis to rewrite its AOF (the clear values are in its history);
    backups and RDB files taken before still hold them."""
    changed = _reseal_where(store, sealer, lambda value: not is_sealed(value))
    if changed:
        rewrite_append_only_files(store)
    return changed


def reseal_webhook_secrets(store: Store, sealer: Sealer) -> int:
    """After a sealing key rotation: re-seal every value not sealed with the current key (then the
    AOF is rewritten, as above)."""
    current = sealer.current_kid
    changed = _reseal_where(store, sealer, lambda value: sealer.sealed_kid(value) != current)
    if changed:
        rewrite_append_only_files(store)
    return changed


def sealing_kids_in_use(store: Store, sealer: Sealer) -> set[str]:
    """The key ids that stored values are sealed with (to know which keys can be forgotten)."""
    used: set[str] = set()
    for client_id in _app_ids(store):
        for value in store.redis.hmget(keys.app(client_id), list(FIELDS)):
            kid = sealer.sealed_kid(value) if value else None
            if kid:
                used.add(kid)
    return used
