"""Reading what the token service stored (docs/data-model.md "Tokens"), for assertions."""

from __future__ import annotations

import time

from broker.storage import keys
from broker.storage.store import Store
from broker.tokens.service import decode_token, encode_token


def token_keys(store: Store, client_id: str, grant_id: str) -> list[str]:
    """The token keys issued under a grant or installation (a scan of the app's token keys)."""
    found = []
    for pattern in (keys.access_token(client_id, "*"), keys.refresh_token(client_id, "*")):
        for key in store.redis.scan_iter(match=pattern, count=1000):
            if (stored(store, key) or {}).get("grant_id") == grant_id:
                found.append(key)
    return sorted(found)


def usable(store: Store, key: str) -> bool:
    """Whether the token stored at ``key`` passes the validity rule now (the lookup script, as
    introspection and the gate run it)."""
    client_id = key[len(keys.PREFIX) + 3 : key.index("}")]
    return bool(store.lua("token_lookup")(keys=[key], args=[keys.app_tag(client_id), int(time.time())]))


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
