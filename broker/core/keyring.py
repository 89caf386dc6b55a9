"""Asymmetric signing keys: ES256 for id_tokens, Ed25519 for ledger checkpoints and consent
receipts. Persisted as a private JWK set in ``BROKER_SIGNING_KEYS_FILE``; rotatable.

Two key sets are published, never mixed: :meth:`Keyring.public_jwks` (the OIDC ``jwks_uri``,
id_token keys only, so OIDC clients never meet a key type they cannot use) and
:meth:`Keyring.ledger_jwks` (``/ledger/v1/keys``, the ledger's Ed25519 keys).

The ledger's JWS carry ``alg`` ``EdDSA`` (RFC 8037), the name mainstream JOSE libraries verify
(PyJWT knows no other name for Ed25519; tests/ledger/test_jws_interop.py). Earlier releases wrote
RFC 9864's fully-specified ``Ed25519`` instead (same curve, same signature bytes); those
checkpoints and receipts still verify (:data:`LEDGER_VERIFY_ALGS`, :func:`ledger_key_set`), and
ledger keys the file still labels ``Ed25519`` are read as ``EdDSA`` keys (the file is rewritten
with the new label on the next rotation).

File format (JSON, mode 0600)::

    {"keys": [{<private JWK with kid, alg, use>, "iat": <created>, "exp": <retired-until>|absent}, ...]}

The newest key of an algorithm without ``exp`` signs. A rotated key gets ``exp`` = now + overlap
and stays published in the JWKS (so tokens it signed still verify) until then. Ledger keys
(Ed25519) are never forgotten: when one expires, its private part is deleted but its public part
stays, because checkpoints and consent receipts it signed must verify for as long as they exist.
The file is re-read when its modification time changes, so ``broker keys rotate`` reaches a
running server without a restart.
"""

from __future__ import annotations

import time
from typing import Any

from joserfc import jwk
from joserfc.errors import InvalidKeyTypeError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jws import JWSRegistry

from broker.core.keyfile import KeysFile

ID_TOKEN_ALG = "ES256"  # noqa: S105 - an algorithm name, not a secret
LEDGER_ALG = "EdDSA"  # RFC 8037: what new checkpoints and receipts are signed with
LEGACY_LEDGER_ALG = "Ed25519"  # RFC 9864's name, used by earlier releases: verified, never signed
LEDGER_VERIFY_ALGS = (LEDGER_ALG, LEGACY_LEDGER_ALG)
_ALIASES = {LEGACY_LEDGER_ALG: LEDGER_ALG}
_KEY_TYPES = {ID_TOKEN_ALG: ("EC", "P-256"), LEDGER_ALG: ("OKP", "Ed25519")}
_META = ("iat", "exp")


def canonical_alg(alg: str) -> str:
    """The algorithm a name stands for here (``Ed25519`` is the ledger key's earlier label)."""
    return _ALIASES.get(alg, alg)


class _Ed25519Only(EdDSAAlgorithm):
    """RFC 8037 ``EdDSA`` pinned to the Ed25519 curve. joserfc warns that RFC 9864 deprecates the
    polymorphic name (it could also mean Ed448); pinned to one curve that concern does not apply,
    and the name is kept because it is the one mainstream libraries verify."""

    security_warning = ""  # joserfc warns only when this is non-empty

    def check_key(self, key: Any) -> None:
        super().check_key(key)
        if key.get("crv") != "Ed25519":
            raise InvalidKeyTypeError(f"Algorithm '{self.name}' here requires an Ed25519 OKP key")


class _LedgerRegistry(JWSRegistry):
    algorithms = {LEDGER_ALG: _Ed25519Only(), LEGACY_LEDGER_ALG: JWSRegistry.algorithms[LEGACY_LEDGER_ALG]}


#: Pass as ``registry=`` to joserfc: signs with ``EdDSA`` only; verifies ``EdDSA`` and ``Ed25519``.
LEDGER_SIGNING = _LedgerRegistry(algorithms=[LEDGER_ALG])
LEDGER_VERIFYING = _LedgerRegistry(algorithms=list(LEDGER_VERIFY_ALGS))


def ledger_key_set(jwks: dict[str, Any]) -> jwk.KeySet:
    """The ledger keys of ``jwks`` as a joserfc key set that verifies either ``alg`` label: the
    key's own ``alg`` member is left out, since a key labelled ``EdDSA`` must still verify a JWS
    an earlier release labelled ``Ed25519`` (the algorithm is pinned by :data:`LEDGER_VERIFYING`)."""
    keys = [{k: v for k, v in key.items() if k != "alg"} for key in jwks.get("keys", [])]
    return jwk.KeySet.import_key_set({"keys": keys})


class KeyringError(Exception):
    """The signing-keys file is missing, unreadable or lacks a needed key."""


def _generate(alg: str, now: int) -> dict[str, Any]:
    kty, crv = _KEY_TYPES[alg]
    key = jwk.generate_key(kty, crv, parameters={"alg": alg, "use": "sig"}, private=True, auto_kid=True)  # type: ignore[call-overload]
    entry: dict[str, Any] = dict(key.as_dict(private=True))
    entry["iat"] = now
    return entry


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    key = jwk.import_key({k: v for k, v in entry.items() if k not in _META})
    return dict(key.as_dict(private=False))


class Keyring(KeysFile):
    """The signing keys: ES256 for id_tokens, Ed25519 for the ledger's checkpoints and receipts."""

    error = KeyringError
    what = "signing keys file"
    invalid = "is not a JWK set"
    create_with = "`broker keys rotate`"

    def _first_entries(self) -> list[dict[str, Any]]:
        now = int(time.time())
        return [_generate(alg, now) for alg in _KEY_TYPES]

    def _load(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if isinstance(entry, dict) and entry.get("alg") in _ALIASES:
                entry["alg"] = _ALIASES[entry["alg"]]

    def _live(self) -> list[dict[str, Any]]:
        self._reload()
        now = time.time()
        return [e for e in self._entries if "exp" not in e or e["exp"] > now]

    def signing_key(self, alg: str) -> Any:
        """The current private key for ``alg`` (a joserfc key with ``kid``)."""
        alg = canonical_alg(alg)
        current = [e for e in self._live() if e.get("alg") == alg and "exp" not in e and "d" in e]
        if not current:
            raise KeyringError(f"no current {alg} key in {self.path}; run `broker keys rotate`")
        newest = max(current, key=lambda e: e.get("iat", 0))
        return jwk.import_key({k: v for k, v in newest.items() if k not in _META})

    def public_jwks(self) -> dict[str, Any]:
        """The OIDC JWKS: every published (current or in-overlap) id_token key, public parts only.
        Never a ledger key: those are at ``/ledger/v1/keys`` (:meth:`ledger_jwks`)."""
        return {"keys": [_public(e) for e in self._live() if e.get("alg") == ID_TOKEN_ALG]}

    def ledger_jwks(self) -> dict[str, Any]:
        """Every Ed25519 key ever used, retired ones included: what checkpoints and receipts need."""
        self._reload()
        return {"keys": [_public(e) for e in self._entries if e.get("alg") == LEDGER_ALG]}

    def verification_key_set(self) -> jwk.KeySet:
        """Keys that verify consent receipts and checkpoints, retired ones included."""
        return ledger_key_set(self.ledger_jwks())

    def current_kids(self) -> list[tuple[str, str]]:
        """(alg, kid) of each key that signs now, for ``broker keys init``."""
        return [(alg, str(self.signing_key(alg).kid)) for alg in _KEY_TYPES]

    # -- writing --------------------------------------------------------------------------------

    def rotate(self, alg: str, overlap_seconds: int) -> str:
        """Add a new key for ``alg``; keys it replaces stay published for ``overlap_seconds``."""
        alg = canonical_alg(alg)
        if alg not in _KEY_TYPES:
            raise KeyringError(f"unknown algorithm {alg!r}; expected one of {', '.join(_KEY_TYPES)}")
        self._reload()
        now = int(time.time())
        entries = []
        for entry in self._entries:
            if "exp" not in entry or entry["exp"] > now:
                entries.append(entry)
            elif entry.get("alg") == LEDGER_ALG:  # retired: keep the public key, forget the private one
                entries.append({k: v for k, v in entry.items() if k != "d"})
            # an expired id_token key is dropped: no token it signed is still valid
        for entry in entries:
            if entry.get("alg") == alg and "exp" not in entry:
                entry["exp"] = now + overlap_seconds
        fresh = _generate(alg, now)
        entries.append(fresh)
        self._write(entries)
        self._reload()
        return str(fresh["kid"])
