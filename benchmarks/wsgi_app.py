"""The broker WSGI app built from the environment, for running under gunicorn in ``serve_bench.py``."""

from __future__ import annotations

from broker.app import create_app
from broker.config import Settings

app = create_app(Settings.from_env())
