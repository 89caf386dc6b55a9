"""Blueprint for the interactions audience."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("interactions", __name__)

from broker.interactions import consent  # noqa: E402,F401  (routes register on bp)
