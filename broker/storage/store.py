"""The storage interface: one Redis implementation, used everywhere (tests included).

Services get a :class:`Store` and use ``store.redis`` for plain commands and
``store.script(source)`` for Lua. Scripts are registered once per process; redis-py's
:class:`~redis.commands.core.Script` runs them with EVALSHA and re-loads them on NOSCRIPT
(e.g. after a failover or SCRIPT FLUSH), which works the same on Redis Cluster.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

from broker.errors import StorageUnavailable
from broker.storage.breaker import BreakerConnectionPool, CircuitBreaker

UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ReadOnlyError)


class Store:
    def __init__(
        self,
        client: Any,
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.redis = client
        self.breaker = breaker or CircuitBreaker(0, 0)
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        timeout_ms: int = 2000,
        wait_replicas: int = 0,
        breaker_ms: int = 0,
    ) -> Store:
        """``breaker_ms`` > 0 puts a circuit breaker (see :mod:`broker.storage.breaker`) in front of
        a single-node Redis: after a connection or timeout failure, calls fail at once for that long.
        A cluster client keeps redis-py's own per-node handling."""
        timeout = timeout_ms / 1000
        client: Any
        breaker = CircuitBreaker(breaker_ms / 1000, probe_timeout=2 * timeout + 1)
        if cluster:
            client = RedisCluster.from_url(
                url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            breaker = CircuitBreaker(0, 0)
        else:
            pool = BreakerConnectionPool.from_url(
                url,
                breaker=breaker,
                decode_responses=True,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                health_check_interval=30,
            )
            client = redis.Redis(connection_pool=pool)
            client.auto_close_connection_pool = True
        return cls(client, wait_replicas=wait_replicas, breaker=breaker)

    def script(self, source: str) -> Script:
        """Register a Lua script once; call the result with ``keys=[...]`` and ``args=[...]``."""
        found = self._scripts.get(source)
        if found is None:
            with self._lock:
                found = self._scripts.get(source)
                if found is None:
                    found = self.redis.register_script(source)
                    self._scripts[source] = found
        return found

    def confirm_durable(self, key: str) -> None:
        """With replicas configured, wait until they hold the last write (DESIGN invariant 1).

        A single node gets durability from ``appendfsync always``. ``key`` routes WAIT to the
        shard that took the write on a cluster.
        """
        if self.wait_replicas <= 0:
            return
        if isinstance(self.redis, RedisCluster):
            node = self.redis.get_node_from_key(key)
            acked = self.redis.execute_command(
                "WAIT", self.wait_replicas, self.wait_timeout_ms, target_nodes=node
            )
        else:
            acked = self.redis.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        if int(acked) < self.wait_replicas:
            raise StorageUnavailable("replicas did not confirm the write in time")

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except UNAVAILABLE:
            return False
        except redis.RedisError:
            return False

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection has nothing to report
            self.redis.close()
