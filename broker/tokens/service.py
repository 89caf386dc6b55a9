"""Opaque tokens and authorization codes: formats, storage and the one validity rule.

Formats (docs/data-model.md): ``brk_at_<client_id>.<random>``, ``brk_rt_...``, ``brk_ac_...``. The
client id inside the token names the app's hash tag, so every check and revocation runs in the
app's slot as one Lua script. Only ``keyed_hash(BROKER_TOKEN_HASH_KEY, token)`` is stored (its
first 128 bits name the key).

Storage (docs/architecture.md "Token storage and the token endpoint"): a token is one string key
holding its fields joined by ``|`` (``_validity.lua`` reads and writes it), expiring with the token.
There is no other per-token key and no token set: a token carries its owner's generation
(``gen``), and a refresh chain (``family``) is a field of its tokens.

Validity (``broker/storage/lua/_validity.lua``, shared with the disclosure gate): the key exists
and has not expired, the app is ``active``, and the token's grant (or installation) still exists
with the same id and generation (and, for an installation, ``enabled`` is ``1``; for a refresh
chain, its family is not among the grant's revoked ones, ``rf``). Effective scopes = token scopes ∩
current grant scopes. Revoking every token of a grant or installation is one ``HINCRBY`` of its
generation; revoking a chain adds its family to ``rf``. Nothing is cached, so revocation is
immediate (DESIGN invariant 2); a revoked token's key stays, unusable, until it expires.

Single use and reuse detection (RFC 6749 4.1.2, RFC 9700 4.14):

* A code is consumed in the same script that writes the tokens issued from it, and replaced by a
  tombstone (``used=1``, the token ``family`` and ``grant_id``) kept for the refresh-token lifetime.
  Presenting it again is ``invalid_grant`` and revokes every token of that family, so 50 concurrent
  redemptions give exactly one token response (whose tokens the 49 replays then revoke).
* Refresh tokens rotate on every use. The used token is kept (``rotated_at``) until it expires.
  Policy for reuse, ``BROKER_REFRESH_GRACE_SECONDS`` (default 10): presenting a rotated token more
  than ``grace`` seconds after its rotation revokes the whole grant (every access and refresh token
  of its generation, whichever code they came from) and fails with ``invalid_grant``. Within
  the grace window a retry (two tabs, a client that lost the response) gets the *same* new pair the
  rotation issued, so the chain does not fork and nothing is revoked, as long as that pair is
  untouched (once its refresh token was used or either token revoked, it is reuse). That pair is
  kept on the used token only sealed (AES-GCM) under a key derived from ``BROKER_TOKEN_HASH_KEY`` and
  the used refresh token itself, which the server never stores: a Redis dump still yields no usable
  token. With grace 0 any reuse, even a concurrent retry, revokes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.core.hashing import keyed_hash
from broker.core.ids import ACCESS_PREFIX, CODE_PREFIX, REFRESH_PREFIX, client_of
from broker.core.records import TokenInfo
from broker.observability import metrics
from broker.storage import keys
from broker.storage.store import Store


def new_family() -> str:
    """A refresh chain's id: only compared within one grant's token set, so 48 bits are plenty."""
    return secrets.token_hex(6)


def token_key(prefix: str, client_id: str, token_hash: str) -> str:
    if prefix == ACCESS_PREFIX:
        return keys.access_token(client_id, token_hash)
    if prefix == REFRESH_PREFIX:
        return keys.refresh_token(client_id, token_hash)
    return keys.auth_code(client_id, token_hash)


# The scripts (broker/storage/lua/token_*.lua) all include _validity.lua, the rule above.


# The stored value's fields, in order (``TOKEN_FIELDS`` of _validity.lua, which writes them).
TOKEN_FIELDS = ("kind", "subject", "grant_id", "scopes", "issued_at", "expires_at", "family", "auth_time",
                "rotated_at", "grace_box", "grace_rt", "grace_at", "gen")  # fmt: skip
_KINDS = {"g": "grant", "i": "installation"}


def decode_token(raw: str) -> dict[str, str]:
    """A stored token value as its fields (``read_token`` of _validity.lua); for reports and tests,
    the scripts read it themselves."""
    values = raw.split("|")
    fields = dict(zip(TOKEN_FIELDS, values + [""] * (len(TOKEN_FIELDS) - len(values)), strict=True))
    fields["kind"] = _KINDS.get(fields["kind"], fields["kind"])
    return fields


def encode_token(fields: dict[str, str]) -> str:
    """The stored value of a token's fields (``encode_token`` of _validity.lua, which writes them)."""
    codes = {name: code for code, name in _KINDS.items()}
    values = [str(fields.get(name, "")) for name in TOKEN_FIELDS]
    values[0] = codes.get(values[0], values[0])
    while values and values[-1] == "":
        values.pop()
    return "|".join(values)


def _parse(flat: list[Any], client_id: str, token_type: str) -> TokenInfo:
    """The lookup script's answer: the token's fields as a flat list, ``effective_scopes`` appended."""
    raw = {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}
    raw["client_id"] = client_id
    return replace(TokenInfo.from_hash(raw), token_type=token_type)


def _lookup(store: Store, hash_key: str, token: str, prefix: str, token_type: str) -> TokenInfo | None:
    client_id = client_of(token, prefix)
    if client_id is None:
        return None
    key = token_key(prefix, client_id, keyed_hash(hash_key, token))
    flat = store.lua("token_lookup")(keys=[key], args=[keys.app_tag(client_id), int(time.time())])
    return _parse(flat, client_id, token_type) if flat else None


def lookup_access_token(store: Store, hash_key: str, token: str) -> TokenInfo | None:
    """The one validity rule for access tokens (data model "A token is valid only while")."""
    return _lookup(store, hash_key, token, ACCESS_PREFIX, "access_token")


def lookup_refresh_token(store: Store, hash_key: str, token: str) -> TokenInfo | None:
    """Same rule for refresh tokens; a rotated one is still returned (``rotated_at`` set)."""
    return _lookup(store, hash_key, token, REFRESH_PREFIX, "refresh_token")


@dataclass(frozen=True)
class Issue:
    """What to write for one token response."""

    client_id: str
    kind: str
    subject: str
    grant_id: str
    scopes: str
    access_token: str
    access_expires_at: int
    refresh_token: str | None
    refresh_expires_at: int
    family: str = ""  # a refresh chain (code flow); none for organization tokens
    auth_time: int | None = None


class IssueRefused(Exception):
    """The code, refresh token or installation could not be used. ``reason``: replayed | reused |
    expired | revoked, or for an organization token not_installed | disabled | no_scopes |
    invalid_scope (``detail``: the scopes the installation does not grant)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _grace_key(hash_key: str, used_refresh_token: str) -> AESGCM:
    material = hmac.new(hash_key.encode(), b"refresh-grace\x00" + used_refresh_token.encode(), hashlib.sha256)
    return AESGCM(material.digest())


def _seal_pair(hash_key: str, used_refresh_token: str, item: Issue) -> str:
    """The pair ``item`` issues, sealed so that only a holder of the used refresh token can open it."""
    plain = json.dumps(
        {
            "at": item.access_token,
            "rt": item.refresh_token,
            "exp": item.access_expires_at,
            "scope": item.scopes,
        }
    ).encode()
    nonce = secrets.token_bytes(12)
    sealed = _grace_key(hash_key, used_refresh_token).encrypt(nonce, plain, item.client_id.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def _open_pair(hash_key: str, used_refresh_token: str, client_id: str, box: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(box.encode())
        plain = _grace_key(hash_key, used_refresh_token).decrypt(raw[:12], raw[12:], client_id.encode())
        data: dict[str, Any] = json.loads(plain)
    except (ValueError, InvalidTag):
        return None
    return data


def issue(
    store: Store,
    hash_key: str,
    item: Issue,
    *,
    consume: str = "none",
    consumed_key: str = "",
    tombstone_ttl: int = 0,
    grace_seconds: int = 0,
    used_refresh_token: str = "",
) -> dict[str, Any] | None:
    """Store the tokens of one response atomically, consuming a code or refresh token if asked.

    ``consume="installation"`` is ``issue_installation_token``'s (``consumed_key``: the installation).
    Rotating a refresh token (``consume="refresh"``, ``used_refresh_token`` = the token presented)
    with a grace window keeps the new pair sealed on the used token. When the used token was already
    rotated within the window, nothing is written and the pair that rotation issued is returned as a
    token response (``access_token``, ``refresh_token``, ``expires_in``, ``scope``); otherwise None.
    """
    cid = item.client_id
    now = int(time.time())
    at_key = keys.access_token(cid, keyed_hash(hash_key, item.access_token))
    rt_key = (
        keys.refresh_token(cid, keyed_hash(hash_key, item.refresh_token)) if item.refresh_token else at_key
    )
    box = ""
    if consume == "refresh" and grace_seconds > 0 and used_refresh_token and item.refresh_token:
        box = _seal_pair(hash_key, used_refresh_token, item)
    result = store.lua("token_issue")(
        keys=[consumed_key or at_key, owner_key(item.kind, cid, item.subject), at_key, rt_key],
        args=[keys.app_tag(cid), now, consume, item.access_expires_at, item.refresh_expires_at,
              "1" if item.refresh_token else "0", max(tombstone_ttl, 1), grace_seconds, box,
              item.kind, item.subject, item.grant_id, item.scopes, item.family,
              "" if item.auth_time is None else item.auth_time],
    )  # fmt: skip
    result = str(result)
    # an organization token counts as client_credentials (the metric's name for consuming nothing)
    metrics.token_issued("none" if consume == "installation" else consume,
                         "issued" if result.split(" ")[0] == "ok" else result.split(" ")[0])  # fmt: skip
    if consume == "installation" and result.startswith("ok "):
        return {"scope": result[len("ok ") :]}
    if result.startswith("grace "):
        pair = _open_pair(hash_key, used_refresh_token, cid, result[len("grace ") :])
        if pair is None:  # pragma: no cover - only a token that rotated itself can open its box
            raise IssueRefused("reused")
        return {
            "token_type": "Bearer",
            "access_token": pair["at"],
            "refresh_token": pair["rt"],
            "expires_in": max(0, int(pair["exp"]) - now),
            "scope": pair["scope"],
        }
    if result != "ok":
        reason, _, detail = result.partition(" ")
        raise IssueRefused(reason, detail)
    return None


def issue_installation_token(store: Store, hash_key: str, item: Issue) -> str:
    """Store an organization token for the installation of ``item.client_id`` in ``item.subject``
    (the org id), deciding in the same script what the installation allows: the token endpoint's
    one round trip after client authentication. ``item.scopes``: the organization scopes asked for
    ('' for every scope the installation grants); ``item.grant_id`` is ignored (the installation's
    id is read). Returns the scopes issued; IssueRefused when the installation refuses."""
    inst_key = keys.installation(item.client_id, item.subject)
    answer = issue(store, hash_key, item, consume="installation", consumed_key=inst_key)
    assert answer is not None  # an installation token never answers with a grace pair
    return str(answer["scope"])


def save_code(store: Store, hash_key: str, code: str, client_id: str, ttl: int, data: dict[str, str]) -> None:
    key = keys.auth_code(client_id, keyed_hash(hash_key, code))
    with store.redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=data)
        pipe.expire(key, ttl)
        pipe.execute()


def read_code(store: Store, hash_key: str, code: str, client_id: str) -> dict[str, str] | None:
    """The code's data, or None. A used code (tombstone) counts as a replay: its tokens are revoked."""
    if client_of(code, CODE_PREFIX) != client_id:
        return None
    key = keys.auth_code(client_id, keyed_hash(hash_key, code))
    data: dict[str, str] = store.redis.hgetall(key)
    if not data:
        return None
    if data.get("used") == "1":
        store.lua("token_replay")(keys=[key], args=[keys.app_tag(client_id)])
        return None
    return data


def revoke_token(store: Store, hash_key: str, token: str, *, family: bool = False) -> bool:
    """Revoke one access or refresh token (``family``: with every token of its chain)."""
    for prefix in (ACCESS_PREFIX, REFRESH_PREFIX):
        client_id = client_of(token, prefix)
        if client_id:
            key = token_key(prefix, client_id, keyed_hash(hash_key, token))
            mode = "family" if family else "one"
            return bool(store.lua("token_revoke_one")(keys=[key], args=[keys.app_tag(client_id), mode]))
    return False


def owner_key(kind: str, client_id: str, subject: str) -> str:
    """The hash a token of ``kind`` (grant | installation) answers to."""
    return keys.installation(client_id, subject) if kind == "installation" else keys.grant(client_id, subject)


def revoke_grant_tokens(store: Store, owner: str, owner_id: str) -> int:
    """Every token issued under one grant or installation (``owner``: its hash, ``owner_id``: its id)
    stops working: its generation moves on (one script in the app's slot). A grant or installation
    that is gone or has another id is left alone (its tokens fail the validity rule already).
    Returns 1 (a new generation) or 0."""
    return int(store.lua("token_revoke_owner")(keys=[owner], args=[owner_id]))


def delete_app_tokens(store: Store, client_id: str) -> int:
    """Delete every token key of an app (a scan of its slot's token keys): storage only, since an
    app that is gone or suspended already fails every token check."""
    total = 0
    for pattern in (keys.access_token(client_id, "*"), keys.refresh_token(client_id, "*")):
        batch: list[str] = []
        for key in store.redis.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                total += int(store.redis.delete(*batch))
                batch = []
        if batch:
            total += int(store.redis.delete(*batch))
    return total


def migrate_legacy_tokens(store: Store) -> int:
    """Rewrite tokens stored by 0.2.0 and earlier (a hash per token named by the full keyed hash,
    plain token sets, one set per refresh chain) as one string each, keeping each token's expiry,
    and delete the old sets. Idempotent: a token already a string is left alone. Returns how many
    tokens were rewritten. Run by ``broker migrate`` (migration 3), never while a broker serves."""
    moved = 0
    for pattern in (keys.access_token("*", "*"), keys.refresh_token("*", "*")):
        for old in store.redis.scan_iter(match=pattern, count=1000):
            if store.redis.type(old) != "hash":
                continue
            fields = store.redis.hgetall(old)
            ttl_ms = int(store.redis.pttl(old))
            tag, _, token_hash = old.rpartition(":")
            kind_key = tag.rpartition(":")[2]  # at | rt
            client_id = tag[len(keys.PREFIX) + 3 : tag.index("}")]
            new = f"{keys.app_tag(client_id)}:{kind_key}:{token_hash[: keys.TOKEN_HASH_CHARS]}"
            if ttl_ms > 0 and fields.get("kind") and fields.get("grant_id") and fields.get("expires_at"):
                value = encode_token({name: fields.get(name, "") for name in TOKEN_FIELDS})
                store.redis.set(new, value, px=ttl_ms)
                moved += 1
            store.redis.delete(old)
    for pattern in (f"{keys.PREFIX}{{a:*}}:gtok:*", f"{keys.PREFIX}{{a:*}}:fam:*"):
        for old in store.redis.scan_iter(match=pattern, count=1000):
            store.redis.delete(old)
    return moved
