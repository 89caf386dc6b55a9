"""Blueprint for the privacy audience."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("privacy", __name__)

from broker.privacy import api as _api  # noqa: E402,F401 - the privacy center JSON API
from broker.privacy import pages as _pages  # noqa: E402,F401 - the privacy center pages
from broker.privacy import receipts as _receipts  # noqa: E402,F401 - attaches the receipt routes to bp
