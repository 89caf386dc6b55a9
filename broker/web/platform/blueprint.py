"""Platform API (``/internal/v1``), authenticated with the platform API key.

Routes live in one module per area and attach to this blueprint; CSRF does not apply (no cookies).
"""

from __future__ import annotations

from flask import Blueprint

from broker.extensions import csrf

bp = Blueprint("internal", __name__, url_prefix="/internal/v1")
csrf.exempt(bp)
