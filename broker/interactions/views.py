"""Blueprint for the interactions audience."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("interactions", __name__)
