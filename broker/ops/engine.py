"""The versions an operator asks for: the Redis engine of the binary the embedded store runs, and the
engine of the Redis a store is connected to."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import redis

from broker.storage.embedded import EmbeddedRedisError, redis_server_binary


def binary_version() -> str:
    """``redis 6.2.14`` / ``valkey 8.1.1``: what ``redis-server --version`` of the embedded binary says."""
    try:
        binary = redis_server_binary()
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (EmbeddedRedisError, OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"
    # "Redis server v=6.2.14 sha=..." / "Valkey server v=8.1.1 sha=..."
    match = re.match(r"\s*(\w+) server v=(\S+)", out)
    return f"{match.group(1).lower()} {match.group(2)}" if match else out.strip() or "unknown"


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
