"""The same-stack floor for ``peer_bench.py``: Flask with redis-py, nothing else.

``peer_bench.py`` serves it on granian (as ``broker serve`` runs) and on gunicorn gthread (``--servers``).

``/hello`` answers without I/O; ``/redis`` does one ``MULTI`` (``GET`` + ``XADD``) per request, the
least a request that reads state and writes a durable record can do on this stack (the redis-server
runs with AOF ``appendfsync always``, as the broker's embedded one). ``FLOOR_REDIS_URL`` names it.
"""

from __future__ import annotations

import os

import redis
from flask import Flask, jsonify

app = Flask(__name__)
_pool = redis.ConnectionPool.from_url(os.environ.get("FLOOR_REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.get("/hello")
def hello() -> object:
    return jsonify(hello="world")


@app.get("/redis")
def one_multi() -> object:
    client = redis.Redis(connection_pool=_pool)
    pipe = client.pipeline(transaction=True)
    pipe.get("floor:profile")
    pipe.xadd("floor:journal", {"f": "v"}, maxlen=10_000, approximate=True)
    value, entry = pipe.execute()
    return jsonify(value=value.decode() if value else None, entry=entry.decode())
