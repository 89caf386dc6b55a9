"""Migration 3: tokens in the compact layout (docs/data-model.md "Tokens").

Up to 0.2.0 a token was a hash named by its full keyed hash, every grant and installation kept a
plain set of its token keys that never dropped expired ones, and every refresh chain a set of its
own. This broker reads a token as one packed string named by 128 bits of the keyed hash (until
migration 8, also indexed in a sorted set per grant or installation). Each live token is rewritten
with its expiry (its holder keeps using it); the old sets are deleted. Idempotent: rewritten tokens
are skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.tokens.service import migrate_legacy_tokens

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.storage.store import Store

NUMBER = 3
DESCRIPTION = "rewrite tokens in the compact layout (one string each)"


def up(store: Store, settings: Settings) -> None:
    migrate_legacy_tokens(store)
