"""Blueprint for the interactions audience (login, consent): kept apart from protocol code."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("interactions", __name__)
