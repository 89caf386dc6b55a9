"""Blueprint for the developer audience."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("developer", __name__)
