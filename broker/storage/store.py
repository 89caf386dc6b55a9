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
from redis.sentinel import MasterNotFoundError, Sentinel

from broker.errors import StorageUnavailable
from broker.storage import keys

# MasterNotFoundError is a ConnectionError already; listed for the reader: during a Sentinel failover
# "no primary right now" is unavailability (503), never a 500.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.ReadOnlyError,
    MasterNotFoundError,
)


class Store:
    def __init__(self, client: Any, *, wait_replicas: int = 0, wait_timeout_ms: int = 1000) -> None:
        self.redis = client
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()
        self.sentinel: Sentinel | None = None
        self.sentinel_service = ""

    @classmethod
    def from_url(
        cls, url: str, *, cluster: bool = False, timeout_ms: int = 2000, wait_replicas: int = 0
    ) -> Store:
        timeout = timeout_ms / 1000
        client: Any
        if cluster:
            client = RedisCluster.from_url(
                url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        else:
            client = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                health_check_interval=30,
            )
        return cls(client, wait_replicas=wait_replicas)

    @classmethod
    def from_sentinel(
        cls,
        sentinels: list[tuple[str, int]] | tuple[tuple[str, int], ...],
        service: str,
        *,
        timeout_ms: int = 2000,
        wait_replicas: int = 0,
        sentinel_password: str = "",
        password: str = "",
    ) -> Store:
        """The primary of ``service`` as the sentinels name it, re-discovered on every reconnect.

        redis-py's ``SentinelConnectionPool`` asks the sentinels for the primary's address whenever it
        opens a connection and drops connections that end up on a demoted node (READONLY), so after a
        failover the next requests reach the promoted replica without a restart.
        """
        timeout = timeout_ms / 1000
        sentinel = Sentinel(
            list(sentinels),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            sentinel_kwargs={
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                **({"password": sentinel_password} if sentinel_password else {}),
            },
        )
        client = sentinel.master_for(
            service,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            **({"password": password} if password else {}),
        )
        store = cls(client, wait_replicas=wait_replicas)
        store.sentinel = sentinel
        store.sentinel_service = service
        return store

    @classmethod
    def from_settings(cls, settings: Any, url: str | None = None) -> Store:
        """The store ``settings`` describe (Sentinel, Cluster or one URL); ``url`` overrides the URL."""
        if settings.redis_sentinels:
            return cls.from_sentinel(
                settings.redis_sentinels,
                settings.redis_sentinel_service,
                timeout_ms=settings.redis_timeout_ms,
                wait_replicas=settings.redis_wait_replicas,
                sentinel_password=settings.redis_sentinel_password,
                password=settings.redis_password,
            )
        return cls.from_url(
            url if url is not None else settings.redis_url,
            cluster=settings.redis_cluster,
            timeout_ms=settings.redis_timeout_ms,
            wait_replicas=settings.redis_wait_replicas,
        )

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

    def confirm_durable(self, key: str, timeout_ms: int | None = None) -> None:
        """With replicas configured, wait until they hold the last write (DESIGN invariant 1).

        A single node gets durability from ``appendfsync always``. ``key`` routes WAIT to the
        shard that took the write on a cluster.
        """
        if self.wait_replicas <= 0:
            return
        wait_ms = self.wait_timeout_ms if timeout_ms is None else timeout_ms
        if isinstance(self.redis, RedisCluster):
            node = self.redis.get_node_from_key(key)
            acked = self.redis.execute_command("WAIT", self.wait_replicas, wait_ms, target_nodes=node)
        else:
            # WAIT covers the last write *of the connection it runs on*, and the write being confirmed
            # may have gone out on another pooled connection: a marker write on this connection,
            # then WAIT, both in one round trip, so the WAIT covers everything written before.
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(keys.wait_marker(key), "1", px=60000)
            pipe.execute_command("WAIT", self.wait_replicas, wait_ms)
            _, acked = pipe.execute()
        if int(acked) < self.wait_replicas:
            raise StorageUnavailable("replicas did not confirm the write in time")

    def replication_ok(self) -> bool:
        """Could a disclosure record written now be confirmed? With WAIT configured: this node is a
        primary, at least ``wait_replicas`` replicas are online (``INFO replication``) and they
        acknowledge within 100 ms (``WAIT n 100``). Always true without WAIT."""
        if self.wait_replicas <= 0:
            return True
        try:
            if isinstance(self.redis, RedisCluster):
                per_node = self.redis.info("replication", target_nodes=RedisCluster.PRIMARIES)
                one_node = not isinstance(per_node, dict) or "role" in per_node
                infos = [per_node] if one_node else list(per_node.values())
            else:
                infos = [self.redis.info("replication")]
            for info in infos:
                if info.get("role") != "master":
                    return False
                online = sum(
                    1
                    for name, value in info.items()
                    if name.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
                )
                if online < self.wait_replicas:
                    return False
            if not isinstance(self.redis, RedisCluster):
                acked = self.redis.execute_command("WAIT", self.wait_replicas, 100)
                return int(acked) >= self.wait_replicas
            return True
        except redis.RedisError:
            return False

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
