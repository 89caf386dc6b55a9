"""Migration 8: a token answers to its owner's generation; no token sets.

Up to this release every grant and installation kept a sorted set of its live tokens (about 200 bytes
for a person's grant with one token, 140 per organization token), used to delete them all when the
grant or installation was revoked and to find a refresh chain's tokens. The broker now revokes by
moving the owner's generation on (``gen``, checked by the validity rule) and a chain by naming its
family in the grant's ``rf``; a code's tombstone names the grant's person (``subject``) so that a
replay can find the grant. This migration gives the tombstones of codes redeemed before it their
``subject`` (read from a token of the grant's set), then deletes every token set. Tokens issued
before it carry no generation, which matches a grant or installation that never had one: they keep
working. Idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.storage import keys
from broker.tokens.service import decode_token

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 8
DESCRIPTION = "revoke tokens by their owner's generation; delete the per-grant token sets"


def _client_id(key: str) -> str:
    """``b:{a:<client_id>}:...`` -> ``<client_id>``."""
    start = len(keys.PREFIX) + 3
    return key[start : key.index("}", start)]


def up(store: Store, settings: Settings) -> None:
    r = store.redis
    for code in r.scan_iter(match=keys.auth_code("*", "*"), count=1000):
        if r.type(code) != "hash":
            continue
        used, grant_id, subject = r.hmget(code, "used", "grant_id", "subject")
        if used != "1" or subject or not grant_id:
            continue
        client_id = _client_id(code)
        tag = keys.app_tag(client_id)
        for member in r.zrange(keys.grant_tokens(client_id, grant_id), 0, -1):
            raw = r.get(f"{tag}:{member[0]}t:{member[1:]}")
            fields = decode_token(raw) if raw else {}
            if fields.get("kind") == "grant" and fields.get("subject"):
                r.hset(code, "subject", fields["subject"])
                break
    for token_set in r.scan_iter(match=keys.grant_tokens("*", "*"), count=1000):
        r.delete(token_set)
