"""Blueprint for the privacy audience."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("privacy", __name__)
