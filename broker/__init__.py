"""broker: a consent-limited data-sharing broker (OAuth 2.0 / OpenID Connect + disclosure ledger)."""

__version__ = "0.2.0"
