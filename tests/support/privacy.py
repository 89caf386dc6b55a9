"""Shared set-up for the privacy center tests: a signed-in person with a grant and a token."""

from __future__ import annotations

from typing import Any

from broker.core.keyring import Keyring
from broker.ledger.sequencer import Sequencer


def sequence(store: Any, settings: Any) -> None:
    """Move journal records into the ledger and sign a checkpoint."""
    Sequencer(store, Keyring(settings.signing_keys_file), settings).run_once()


def index_grant(store: Any, client_id: str, uid: str) -> None:
    """The indexes save_consent keeps beside a grant (factories.raw_grant(indexed=False) skips them)."""
    from broker.storage import keys

    store.redis.sadd(keys.user_grants(uid), client_id)
    store.redis.sadd(keys.app_grants(client_id), uid)


def index_installation(store: Any, client_id: str, oid: str) -> None:
    from broker.storage import keys

    store.redis.sadd(keys.org_installations(oid), client_id)
    store.redis.sadd(keys.app_installations(client_id), oid)
