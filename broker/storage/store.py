"""The storage interface: one Redis implementation, used everywhere (tests included).

Services get a :class:`Store` and use ``store.redis`` for plain commands and
``store.lua(name)`` for the Lua scripts in ``broker/storage/lua/`` (see :mod:`broker.storage.lua`).
Scripts are registered once per process; redis-py's
:class:`~redis.commands.core.Script` runs them with EVALSHA and re-loads them on NOSCRIPT
(e.g. after a failover or SCRIPT FLUSH), which works the same on Redis Cluster.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import redis
from redis.cluster import ClusterPipeline, RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisClusterException
from redis.sentinel import MasterNotFoundError, Sentinel

from broker.errors import StorageUnavailable
from broker.storage import keys, lua
from broker.storage.breaker import BreakerConnectionPool, CircuitBreaker

# MasterNotFoundError is a ConnectionError already; listed for the reader: during a Sentinel failover
# "no primary right now" is unavailability (503), never a 500.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.ReadOnlyError,
    MasterNotFoundError,
)


class ClusterUnavailable(redis.ConnectionError):
    """A cluster-level failure (no slot owner, MOVED/ASK exhausted, a node gone).

    redis-py raises ``RedisClusterException``, which is not a ``redis.RedisError``; re-raised as
    this, every storage-error handler answers 503 ``temporarily_unavailable`` instead of 500.
    """


class _ClusterPipeline(ClusterPipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return super().execute(raise_on_error)
        except RedisClusterException as exc:
            raise ClusterUnavailable(f"redis cluster: {exc}") from exc


class BrokerCluster(RedisCluster):
    """``RedisCluster`` whose cluster-level failures are ordinary storage errors (see above)."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterUnavailable(f"redis cluster: {exc}") from exc

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        pipe.__class__ = _ClusterPipeline
        return pipe


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def _cluster_enabled(url: str, timeout: float) -> bool:
    """Auto-detection: does the server at ``url`` run in cluster mode (``INFO cluster``)?"""
    if url.startswith("unix://"):
        return False
    probe = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(probe.info("cluster").get("cluster_enabled"))
    except redis.RedisError:
        return False  # unreachable now: the start-up ping reports it
    finally:
        probe.close()


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
        self.sentinel: Sentinel | None = None
        self.sentinel_service = ""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool | None = None,
        timeout_ms: int = 2000,
        wait_replicas: int = 0,
        breaker_ms: int = 0,
    ) -> Store:
        """A store for ``url``; ``cluster=None`` asks the server whether it runs in cluster mode.

        ``breaker_ms`` > 0 puts a circuit breaker (see :mod:`broker.storage.breaker`) in front of
        a single-node Redis: after a connection or timeout failure, calls fail at once for that long.
        A cluster client keeps redis-py's own per-node handling.
        """
        timeout = timeout_ms / 1000
        client: Any
        breaker = CircuitBreaker(breaker_ms / 1000, probe_timeout=2 * timeout + 1)
        if cluster is None:
            cluster = _cluster_enabled(url, timeout)
        if cluster:
            client = BrokerCluster.from_url(
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
            breaker_ms=settings.redis_breaker_ms,
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

    def lua(self, name: str) -> Script:
        """The script in ``broker/storage/lua/<name>.lua``, registered once (see :meth:`script`)."""
        return self.script(lua.source(name))

    def load_scripts(self) -> dict[str, Script]:
        """Register every script and SCRIPT LOAD it (on every primary of a cluster): warms the
        server's script cache, so no first call pays a NOSCRIPT round trip."""
        scripts = {name: self.lua(name) for name in lua.names()}
        for name in scripts:
            self.redis.script_load(lua.source(name))
        return scripts

    @property
    def cluster(self) -> bool:
        return is_cluster(self.redis)

    def batch(self) -> Batch:
        """Commands and scripts to run in order, in as few round trips as the deployment allows."""
        return Batch(self)

    def confirm_durable(self, key: str, timeout_ms: int | None = None) -> None:
        """With replicas configured, wait until they hold the last write (DESIGN invariant 1).

        A single node gets durability from ``appendfsync always``. ``key`` routes WAIT to the
        shard that took the write on a cluster.
        """
        if self.wait_replicas <= 0:
            return
        wait_ms = self.wait_timeout_ms if timeout_ms is None else timeout_ms
        if is_cluster(self.redis):
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


class Batch:
    """Plain commands and Lua scripts, run in the order they were added.

    On a single node the whole batch is one pipeline: one round trip (scripts as EVALSHA, no SCRIPT
    EXISTS first); a server that lost its scripts costs one more, and then a script may land after
    the plain commands that followed it (``_execute_one_node``). On a cluster, redis-py refuses
    scripts inside a pipeline, so each run of plain commands is one cluster pipeline and each script
    its own call; the order holds there. Callers that need an order (for example: index first, then
    the record the index points at) put the command before the script, or both in the script. Not
    atomic either way; use one script or MULTI for that.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._steps: list[tuple[str, Any, tuple[Any, ...], dict[str, Any]]] = []

    def command(self, name: str, *args: Any, **kwargs: Any) -> Batch:
        self._steps.append(("command", name, args, kwargs))
        return self

    def script(self, script: Script, keys: list[str], args: list[Any] | None = None) -> Batch:
        self._steps.append(("script", script, (keys, args or []), {}))
        return self

    def execute(self) -> list[Any]:
        if not self._steps:
            return []
        if not self._store.cluster:
            return self._execute_one_node()
        results: list[Any] = []
        pending: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

        def flush() -> None:
            if pending:
                pipe = self._store.redis.pipeline(transaction=False)
                for name, args, kwargs in pending:
                    getattr(pipe, name)(*args, **kwargs)
                results.extend(pipe.execute())
                pending.clear()

        for kind, what, args, kwargs in self._steps:
            if kind == "command":
                pending.append((what, args, kwargs))
            else:
                flush()
                results.append(what(keys=args[0], args=args[1]))
        flush()
        return results

    def _execute_one_node(self) -> list[Any]:
        # Scripts go out as EVALSHA of the SHA computed once from the source, with no SCRIPT EXISTS
        # before them (what redis-py's pipeline does for scripts it was handed): the steady state is
        # exactly one round trip. When the server has lost its script cache (restart, failover,
        # SCRIPT FLUSH), each script answers NOSCRIPT without running: those are SCRIPT LOADed and
        # run again, in their order, one more round trip. Only then can a script land after the
        # plain commands that followed it in the batch.
        pipe = self._store.redis.pipeline(transaction=False)
        for kind, what, args, kwargs in self._steps:
            if kind == "command":
                getattr(pipe, what)(*args, **kwargs)
            else:
                keys_, argv = args
                pipe.evalsha(what.sha, len(keys_), *keys_, *argv)
        results = list(pipe.execute(raise_on_error=False))
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            retry = self._store.redis.pipeline(transaction=False)
            for script in {self._steps[i][1].sha: self._steps[i][1] for i in missing}.values():
                retry.script_load(script.script)
            for i in missing:
                _, script, (keys_, argv), _ = self._steps[i]
                retry.evalsha(script.sha, len(keys_), *keys_, *argv)
            answers = retry.execute(raise_on_error=False)
            loaded, again = answers[: -len(missing)], answers[-len(missing) :]
            for value in loaded:  # could not load (e.g. READONLY mid-failover): that is the error
                if isinstance(value, Exception):
                    raise value
            for i, value in zip(missing, again, strict=True):
                results[i] = value
        for value in results:
            if isinstance(value, Exception):
                raise value
        return results
