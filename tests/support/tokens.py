"""Reading what the token service stored (docs/data-model.md "Tokens"), for assertions."""

from __future__ import annotations

from broker.storage import keys
from broker.storage.store import Store
from broker.tokens.service import decode_token, encode_token


def token_keys(store: Store, client_id: str, grant_id: str) -> list[str]:
    """The token keys in a grant's or installation's token set (member ``a<hash>`` / ``r<hash>``)."""
    tag = keys.app_tag(client_id)
    members = store.redis.zrange(keys.grant_tokens(client_id, grant_id), 0, -1)
    return [f"{tag}:{m[0]}t:{m[1:]}" for m in members]


def stored(store: Store, key: str) -> dict[str, str] | None:
    """A token key's fields, or None when the key is gone."""
    raw = store.redis.get(key)
    return None if raw is None else decode_token(raw)


def update(store: Store, key: str, **fields: str | int) -> None:
    """Change fields of a stored token in place (its expiry kept)."""
    current = stored(store, key)
    assert current is not None, key
    current.update({k: str(v) for k, v in fields.items()})
    store.redis.set(key, encode_token(current), keepttl=True)


def rotated_refresh_keys(store: Store) -> list[str]:
    """Every refresh token key that was used (``rotated_at`` set)."""
    return [k for k in store.redis.scan_iter(match="*:rt:*") if (stored(store, k) or {}).get("rotated_at")]
