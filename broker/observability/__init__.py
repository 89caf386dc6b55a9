"""Metrics and structured logs (see docs/observability.md)."""
