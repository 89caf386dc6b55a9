"""``broker keys init|rotate``: create the signing keys file once; add a new signing key (the old
one stays in the JWKS for the overlap)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from broker.config import OPTIONS, ConfigError, Settings
from broker.core.keyring import ID_TOKEN_ALG, LEDGER_ALG, LEGACY_LEDGER_ALG, Keyring

ROTATE_HELP = "add a new signing key (the old one stays published for BROKER_KEY_OVERLAP_SECONDS)"
INIT_HELP = "create the signing keys file (ES256 and Ed25519/EdDSA) unless it exists; safe to repeat"


@click.group("keys", help="signing keys (id_tokens, receipts, checkpoints)")
def keys() -> None:
    pass


def _target() -> tuple[Path, int]:
    """The keys file and overlap. In production a missing keys file is a configuration error for the
    server, but this command is how that file is first created, so it tolerates exactly that case."""
    try:
        settings = Settings.from_env()
    except ConfigError:
        raw = os.environ.get("BROKER_SIGNING_KEYS_FILE", "")
        if not raw or Path(raw).exists():
            raise
        overlap = next(o for o in OPTIONS if o.name == "BROKER_KEY_OVERLAP_SECONDS")
        try:
            seconds = overlap.parse(os.environ.get(overlap.name, overlap.default))
        except ValueError as exc:
            raise ConfigError(f"{overlap.name}: {exc}") from None
        return Path(raw), int(seconds)
    return settings.signing_keys_file, settings.key_overlap_seconds


@keys.command("rotate", help=ROTATE_HELP, short_help=ROTATE_HELP)
@click.option(
    "--alg",
    type=click.Choice((ID_TOKEN_ALG, LEDGER_ALG, LEGACY_LEDGER_ALG)),  # Ed25519: the ledger key's old name
    default=ID_TOKEN_ALG,
    help="ES256: id_tokens; EdDSA (or Ed25519): the ledger's checkpoints and receipts",
)
def rotate(alg: str) -> int:
    path, overlap = _target()
    keyring = Keyring(path, create=True)
    kid = keyring.rotate(alg, overlap)
    print(f"new {alg} signing key {kid} in {path}; replaced keys stay published for {overlap} s")
    return 0


@keys.command("init", help=INIT_HELP, short_help=INIT_HELP)
def init() -> int:
    """Idempotent: a container start (compose's one-shot ``keys`` service) may run it every time."""
    path, _overlap = _target()
    existed = path.exists()
    keyring = Keyring(path, create=True)
    kids = ", ".join(f"{alg} {kid}" for alg, kid in keyring.current_kids())
    print(f"{'kept the existing' if existed else 'created the'} signing keys file {path}: {kids}")
    return 0
