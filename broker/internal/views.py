"""Blueprint for the internal audience."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("internal", __name__)
