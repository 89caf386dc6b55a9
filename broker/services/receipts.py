"""Consent receipts (placeholder in the apps branch).

The events helper builds the real module (signed Kantara 1.1 receipts); main merges it over this
file. Until then ``issue_receipt`` is a documented no-op with the agreed signature, so grant changes
can call it unconditionally.
"""

from __future__ import annotations

from typing import Any

from broker.storage.store import Store


def issue_receipt(
    store: Store, app_record: dict[str, Any], grant_record: dict[str, Any], action: str
) -> None:
    """Record a receipt for ``action`` ("granted" | "changed" | "revoked"); no-op placeholder."""
    if action not in {"granted", "changed", "revoked"}:
        raise ValueError(f"unknown receipt action {action!r}")
