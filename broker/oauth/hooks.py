"""Points where the protocol hands over to the disclosure ledger (main wires the real calls)."""

from __future__ import annotations

from typing import Any


def record_id_token_disclosure(client_id: str, grant: Any, uid: str) -> None:
    """Called right before a token response that carries an id_token (which discloses ``sub``, the
    person's pairwise id, to the app). A no-op in this branch; main replaces it with the ledger call,
    which must raise to stop the response if the record cannot be committed (DESIGN invariant 1)."""
    return None
