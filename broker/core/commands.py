"""``broker keys init|rotate|rotate-sealing``: create the signing and sealing keys files once; add a
new signing key (the old one stays in the JWKS for the overlap); add a new sealing key and re-seal
every stored webhook secret with it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from broker.config import OPTIONS, ConfigError, Settings
from broker.core.keyring import ID_TOKEN_ALG, LEDGER_ALG, LEGACY_LEDGER_ALG, Keyring
from broker.core.sealing import Sealer

ROTATE_HELP = "add a new signing key (the old one stays published for BROKER_KEY_OVERLAP_SECONDS)"
INIT_HELP = (
    "create the signing keys file (ES256 and Ed25519/EdDSA) and the sealing keys file unless they "
    "exist; safe to repeat"
)
ROTATE_SEALING_HELP = "add a new sealing key and re-seal every stored webhook secret with it"


@click.group("keys", help="signing keys (id_tokens, receipts, checkpoints) and sealing keys (stored secrets)")
def keys() -> None:
    pass


def _target() -> tuple[Path, int, Path]:
    """The signing keys file, overlap and sealing keys file. In production a missing keys file is a
    configuration error for the server, but this command is how those files are first created, so it
    tolerates exactly that case."""
    try:
        settings = Settings.from_env()
    except ConfigError:
        raw = os.environ.get("BROKER_SIGNING_KEYS_FILE", "")
        if not raw:
            raise
        sealing = Path(
            os.environ.get("BROKER_SEALING_KEYS_FILE", "") or Path(raw).with_name("sealing-keys.json")
        )
        if Path(raw).exists() and sealing.exists():
            raise
        overlap = next(o for o in OPTIONS if o.name == "BROKER_KEY_OVERLAP_SECONDS")
        try:
            seconds = overlap.parse(os.environ.get(overlap.name, overlap.default))
        except ValueError as exc:
            raise ConfigError(f"{overlap.name}: {exc}") from None
        return Path(raw), int(seconds), sealing
    return settings.signing_keys_file, settings.key_overlap_seconds, settings.sealing_keys_file


@keys.command("rotate", help=ROTATE_HELP, short_help=ROTATE_HELP)
@click.option(
    "--alg",
    type=click.Choice((ID_TOKEN_ALG, LEDGER_ALG, LEGACY_LEDGER_ALG)),  # Ed25519: the ledger key's old name
    default=ID_TOKEN_ALG,
    help="ES256: id_tokens; EdDSA (or Ed25519): the ledger's checkpoints and receipts",
)
def rotate(alg: str) -> int:
    path, overlap, _sealing = _target()
    keyring = Keyring(path, create=True)
    kid = keyring.rotate(alg, overlap)
    print(f"new {alg} signing key {kid} in {path}; replaced keys stay published for {overlap} s")
    return 0


@keys.command("init", help=INIT_HELP, short_help=INIT_HELP)
def init() -> int:
    """Idempotent: a container start (compose's one-shot ``keys`` service) may run it every time."""
    path, _overlap, sealing = _target()
    existed = path.exists()
    keyring = Keyring(path, create=True)
    kids = ", ".join(f"{alg} {kid}" for alg, kid in keyring.current_kids())
    print(f"{'kept the existing' if existed else 'created the'} signing keys file {path}: {kids}")
    existed = sealing.exists()
    sealer = Sealer(sealing, create=True)
    verb = "kept the existing" if existed else "created the"
    print(f"{verb} sealing keys file {sealing}: {', '.join(sealer.kids())}")
    return 0


@keys.command("rotate-sealing", help=ROTATE_SEALING_HELP, short_help=ROTATE_SEALING_HELP)
@click.option(
    "--forget-old",
    is_flag=True,
    help="afterwards, delete older sealing keys that no stored value uses any more",
)
def rotate_sealing(forget_old: bool) -> int:
    """Safe beside running servers: they re-read the keys file when it changes, each value is
    re-sealed under WATCH, and a key is forgotten only when no stored value uses it."""
    from broker.events.webhook_secrets import reseal_webhook_secrets, sealing_kids_in_use
    from broker.runtime import load_settings, open_store

    settings = load_settings()
    sealer = Sealer(settings.sealing_keys_file, create=not settings.production)
    kid = sealer.add_key()
    with open_store(settings) as store:
        count = reseal_webhook_secrets(store, sealer)
        print(f"new sealing key {kid} in {settings.sealing_keys_file}; re-sealed {count} stored secret(s)")
        if forget_old:
            old = set(sealer.kids()) - {kid}
            in_use = sealing_kids_in_use(store, sealer) & old
            sealer.forget(old - in_use)
            print(
                f"forgot {len(old - in_use)} older sealing key(s)"
                + (f"; {len(in_use)} still in use, kept" if in_use else "")
            )
    return 0
