"""Sealing: secrets the broker must read back (webhook signing secrets) are stored encrypted.

Hashes cannot be used for a secret the broker itself needs in clear (it signs with it), so such a
secret is sealed with AES-256-GCM under a *sealing key* that is not in Redis: it lives in
``BROKER_SEALING_KEYS_FILE`` (default: ``sealing-keys.json`` beside the signing keys file, in the
data directory in development). A copy of Redis (its AOF, RDB, a replica or a ``DUMP``) therefore
holds only ciphertext.

Sealed value (a string in a Redis hash)::

    sealed:v1:<kid>:<base64url(12-byte nonce || ciphertext || 16-byte tag)>

The associated data is a *context* naming where the value lives (for a webhook secret
``webhook_secret|<client_id>|<field>``), so a sealed value copied into another app's hash or
field does not open.

File format (JSON, mode 0600)::

    {"keys": [{"kid": "<id>", "k": "<base64url 32 bytes>", "iat": <created>}, ...]}

Several keys can be loaded; the newest (largest ``iat``) seals, every key opens. ``broker keys
rotate-sealing`` adds a key, re-seals every sealed value with it and (with ``--forget-old``) drops
keys no value uses any more. The file is re-read when its modification time changes, so a rotation
reaches running processes without a restart.

A value that does not start with ``sealed:`` is a clear value written by an earlier release: it is
still read (until ``seal_existing_webhook_secrets`` has converted it; ``broker migrate``).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.core.keyfile import KeysFile

PREFIX = "sealed:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class SealingError(Exception):
    """The sealing keys file is missing or unreadable, or a sealed value does not open."""


def is_sealed(value: str | None) -> bool:
    return bool(value) and str(value).startswith(PREFIX)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _new_entry(now: int) -> dict[str, Any]:
    return {"kid": "sk_" + secrets.token_hex(6), "k": _b64(secrets.token_bytes(KEY_BYTES)), "iat": now}


class Sealer(KeysFile):
    """Seals and opens strings with the keys of one sealing keys file."""

    error = SealingError
    what = "sealing keys file"

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self._keys: dict[str, AESGCM] = {}
        self._current = ""
        super().__init__(path, create=create)

    def _first_entries(self) -> list[dict[str, Any]]:
        return [_new_entry(int(time.time()))]

    def _load(self, entries: list[dict[str, Any]]) -> None:
        loaded = {}
        for entry in entries:
            raw = _unb64(entry["k"])
            if len(raw) != KEY_BYTES:
                raise ValueError(f"key {entry['kid']} is not {KEY_BYTES} bytes")
            loaded[str(entry["kid"])] = AESGCM(raw)
        if not entries:
            raise ValueError("no keys")
        newest = max(entries, key=lambda e: int(e.get("iat", 0)))
        self._keys, self._current = loaded, str(newest["kid"])

    @property
    def current_kid(self) -> str:
        self._reload()
        return self._current

    def kids(self) -> list[str]:
        self._reload()
        return [str(e["kid"]) for e in self._entries]

    # -- sealing ------------------------------------------------------------------------------------

    def seal(self, plaintext: str, context: str) -> str:
        """``plaintext`` encrypted under the newest key, bound to ``context``."""
        self._reload()
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{PREFIX}{self._current}:{_b64(nonce + sealed)}"

    def open(self, value: str, context: str) -> str:
        """The plaintext of a sealed value; a legacy clear value is returned as it is."""
        if not is_sealed(value):
            return value
        kid, sep, body = value[len(PREFIX) :].partition(":")
        self._reload()
        aead = self._keys.get(kid)
        if not sep or aead is None:
            raise SealingError(f"sealed with unknown key {kid!r} (is the sealing keys file the right one?)")
        try:
            raw = _unb64(body)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise SealingError(f"a value sealed with key {kid!r} does not open (tampered or moved)") from None

    def sealed_kid(self, value: str) -> str | None:
        """The key id a sealed value uses (None for a clear value)."""
        if not is_sealed(value):
            return None
        return value[len(PREFIX) :].partition(":")[0]

    # -- writing the file ---------------------------------------------------------------------------

    def add_key(self) -> str:
        """A new newest key (it seals from now on); older keys still open what they sealed."""
        self._reload()
        fresh = _new_entry(max([int(time.time())] + [int(e.get("iat", 0)) + 1 for e in self._entries]))
        self._write([*self._entries, fresh])
        self._reload()
        return str(fresh["kid"])

    def forget(self, kids: set[str]) -> None:
        """Drop keys (never the current one): values they sealed no longer open."""
        self._reload()
        kept = [e for e in self._entries if e["kid"] not in kids or e["kid"] == self._current]
        self._write(kept)
        self._reload()
