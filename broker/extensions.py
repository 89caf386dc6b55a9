"""Flask extensions, created once and bound to the app by ``broker.app.create_app``.

Blueprints import them from here, never from ``broker.app``: the factory imports the blueprints,
so an import the other way would make a cycle.
"""

from __future__ import annotations

from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
babel = Babel()  # bound with its locale selector by broker.web.interactions.i18n.init_app
