"""Migration 2: seal the webhook signing secrets that release 0.1.0 stored in clear.

0.2.0 keeps every webhook secret sealed (AES-GCM, with a key from ``BROKER_SEALING_KEYS_FILE``,
never in Redis). The broker still reads a clear value, so nothing breaks before this runs; after
it, a copy of Redis holds no usable webhook secret (the append-only file is rewritten so the clear
values leave its history too). Idempotent: sealed values are skipped, a second run seals nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.events.webhook_secrets import seal_existing_webhook_secrets, sealer_for

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 2
DESCRIPTION = "seal the webhook secrets stored in clear by 0.1.0 (key from BROKER_SEALING_KEYS_FILE)"


def up(store: Store, settings: Settings) -> None:
    seal_existing_webhook_secrets(store, sealer_for(settings))
