"""Blueprint for the interactions audience (login, consent): kept apart from protocol code."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("interactions", __name__)

from broker.interactions import consent, login  # noqa: E402,F401  (routes register on bp)
