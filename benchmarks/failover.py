"""What a failover (or a crash) of Redis loses: acknowledged disclosures lost, refused ones recorded.

For each setting, the broker app is served over real HTTP on loopback (werkzeug, threaded) with the
ledger sequencer running beside it; threads read ``GET /v1/me`` (one person and token each); Redis
is then killed with SIGKILL under load and the service continues on what is left. Afterwards the
journals are sequenced and the ledger on the surviving primary is compared with what the clients
were told:

* **lost**: answered 200 (the data left), but no delivered record of it in the ledger;
* **fictional**: answered 503 (or not at all), yet the ledger shows a delivered record of it.

Settings:

1. ``single``   one redis-server, AOF ``appendfsync always``; kill -9, restart it on the same files.
2. ``wait0``    primary + replica, ``BROKER_REDIS_WAIT_REPLICAS=0``; the replica falls behind (paused
                and its link dropped for ``--lag-ms``) before the primary is killed; the replica is
                promoted by hand and the broker repointed to it (what an operator does: a restart with
                a new BROKER_REDIS_URL).
3. ``wait1``    the same with ``WAIT 1``.
4. ``sentinel`` primary + replica + 3 sentinels, ``WAIT 1``; the same lag and kill; Sentinel promotes
                the replica and the broker finds it by itself (``BROKER_REDIS_SENTINELS``).
5. ``replica_down`` primary + replica, ``WAIT 1``; the replica is killed (no failover) for half of
                ``--after``, then restarted: every request meanwhile is refused after its record was
                written, the case that showed refused requests as disclosures.
6. ``cluster``  (``--cluster``) 3 masters + 1 replica each, ``WAIT 1``; the master of one app's
                journal falls behind and is killed; the cluster promotes its replica.

In 2-4 the killed primary is restarted afterwards as a replica of the new one, so that WAIT 1 can be
satisfied again.

    .venv/bin/python benchmarks/failover.py [--settings single,wait0,wait1,sentinel] [--threads 4]
                                            [--before 4] [--after 6] [--lag-ms 1000] [--no-voids]
                                            [--cluster]

A benchmark, not a test: it reports counts and asserts nothing. Bounded: about 20 s per setting.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.app import create_app
from broker.config import Settings
from broker.core.keyring import Keyring
from broker.ledger.sequencer import start_in_background
from broker.storage.embedded import free_port
from broker.storage.store import Store
from tests.support.environment import LiveServer
from tests.support.replication import SERVICE, Load, Node, Outcome, ReplicaSet, make_people, settle_and_check

SETTINGS = ("single", "wait0", "wait1", "sentinel", "replica_down")
LABELS = {
    "single": "single node, AOF always; kill -9 of redis-server, restart",
    "wait0": "primary + replica, WAIT 0; kill -9 primary, promote replica",
    "wait1": "primary + replica, WAIT 1; kill -9 primary, promote replica",
    "sentinel": "primary + replica + 3 sentinels, WAIT 1; kill -9 primary",
    "replica_down": "primary + replica, WAIT 1; kill -9 the replica (no failover), restart it",
    "cluster": "Redis Cluster, 3 masters + 1 replica each, WAIT 1; kill -9 a master",
}


@dataclass
class Row:
    setting: str
    outcome: Outcome
    ok_after: int  # 200s after the kill
    first_ok_after_s: float | None  # from the kill to the first 200 of a request sent after it
    repointed: str  # how the broker reached the new primary


def _settings(tmp: Path, port: int, **env: str) -> Settings:
    base = {
        "BROKER_DATA_DIR": str(tmp / "data"),
        "BROKER_LOG_LEVEL": "ERROR",
        "BROKER_REDIS_TIMEOUT_MS": "1000",
    }
    return replace(Settings.from_env({**base, **env}), issuer=f"http://127.0.0.1:{port}")


def _repoint(store: Store, node: Node) -> None:
    """Point an URL-configured store at another node (stands in for a restart with a new URL)."""
    old = store.redis.connection_pool
    store.redis.connection_pool = redis.ConnectionPool(
        connection_class=old.connection_class, **{**old.connection_kwargs, "port": node.port}
    )
    old.disconnect()


def _lag(primary: Node, replica: Node, lag_ms: int) -> None:
    """The replica falls behind: it is paused and its link dropped (as in a network partition), so
    the primary's writes of the next ``lag_ms`` never reach it (on loopback a merely paused replica
    would still read them from the socket buffer after the primary died)."""
    if lag_ms > 0 and replica.process is not None:
        os.kill(replica.process.pid, signal.SIGSTOP)
        primary.client.client_kill_filter(_type="replica")
        time.sleep(lag_ms / 1000)


def _resume(replica: Node) -> None:
    if replica.process is not None:
        os.kill(replica.process.pid, signal.SIGCONT)


def run_setting(name: str, args: argparse.Namespace, tmp: Path) -> Row:
    started: list[ReplicaSet | Node] = []
    try:
        return _run_setting(name, args, tmp, started)
    finally:
        for thing in started:
            thing.stop()


def _run_setting(name: str, args: argparse.Namespace, tmp: Path, started: list[ReplicaSet | Node]) -> Row:
    port = free_port()
    replica_set: ReplicaSet | None = None
    single: Node | None = None
    if name == "single":
        single = Node(tmp / "redis")
        started.append(single)
        single.start()
        settings = _settings(tmp, port, BROKER_REDIS_URL=f"redis://127.0.0.1:{single.port}/0")
    elif name in ("wait0", "wait1", "replica_down"):
        replica_set = ReplicaSet(tmp / "redis", replicas=1)
        started.append(replica_set)
        replica_set.start()
        settings = _settings(
            tmp,
            port,
            BROKER_REDIS_URL=f"redis://127.0.0.1:{replica_set.primary.port}/0",
            BROKER_REDIS_WAIT_REPLICAS="0" if name == "wait0" else "1",
        )
    elif name == "sentinel":
        replica_set = ReplicaSet(tmp / "redis", replicas=1, sentinels=3)
        started.append(replica_set)
        replica_set.start(down_after_ms=500, failover_timeout_ms=3000)
        settings = _settings(
            tmp,
            port,
            BROKER_REDIS_SENTINELS=",".join(f"{h}:{p}" for h, p in replica_set.sentinel_addresses),
            BROKER_REDIS_SENTINEL_SERVICE=SERVICE,
            BROKER_REDIS_WAIT_REPLICAS="1",
        )
    else:
        raise SystemExit(f"unknown setting {name!r}")
    store = Store.from_settings(settings)
    tokens = make_people(store, settings, args.threads)
    server = LiveServer(create_app(settings, store), port)
    server.start()
    stop_sequencer = start_in_background(store, Keyring(settings.signing_keys_file), settings)
    load = Load(server.url, tokens)
    survivor: Node
    repointed = ""
    try:
        load.start()
        time.sleep(args.before)
        if single is not None:
            single.kill()
            killed_at = time.monotonic()
            time.sleep(1.0)
            single.start()
            survivor, repointed = single, "same node restarted"
        elif name == "replica_down":
            assert replica_set is not None
            replica = replica_set.replicas[0]
            replica.kill()  # every record now fails WAIT: refused, and must not count as disclosed
            killed_at = time.monotonic()
            time.sleep(args.after / 2)
            replica.start()
            survivor, repointed = replica_set.primary, "no failover"
        else:
            assert replica_set is not None
            old, replica = replica_set.primary, replica_set.replicas[0]
            _lag(old, replica, args.lag_ms)
            old.kill()
            killed_at = time.monotonic()
            _resume(replica)
            if name == "sentinel":
                survivor = replica_set.wait_promoted(old, timeout=30)
                # back as a replica of the new primary at once (the sentinels would convert it too,
                # but only after it has reported the wrong role for 8 s)
                old.start("--replicaof", "127.0.0.1", str(survivor.port))
                repointed = "automatic (Sentinel)"
            else:
                time.sleep(0.5)  # an operator (or a script) notices
                replica_set.promote(replica)
                _repoint(store, replica)
                old.start("--replicaof", "127.0.0.1", str(replica.port))
                survivor, repointed = replica, "by hand (new URL)"
        time.sleep(args.after)
    finally:
        load.stop()
        stop_sequencer.set()
        server.stop()
    final = Store.from_url(f"redis://127.0.0.1:{survivor.port}/0")
    outcome = settle_and_check(final, settings, load.sent)
    final.close()
    store.close()
    after = sorted(s.at for s in load.sent if s.status == 200 and s.started > killed_at)
    return Row(name, outcome, len(after), (after[0] - killed_at) if after else None, repointed)


def run_cluster(args: argparse.Namespace, tmp: Path) -> Row:
    """3 masters + 1 replica each (``cluster-node-timeout`` 1 s), ``BROKER_REDIS_CLUSTER=true``,
    WAIT 1. The master holding the first person's app journal falls behind its replica (as above) and
    is killed; the cluster promotes the replica; the killed node comes back as a replica."""
    from tests.support.redis_servers import RedisClusterServer

    cluster = RedisClusterServer(tmp / "cluster", replicas=1, node_timeout_ms=1000)
    try:
        cluster.start()
        return _run_cluster(args, tmp, cluster)
    finally:
        cluster.stop()


def _run_cluster(args: argparse.Namespace, tmp: Path, cluster: Any) -> Row:
    from broker.storage import keys

    port = free_port()
    settings = _settings(
        tmp, port, BROKER_REDIS_URL=cluster.url, BROKER_REDIS_CLUSTER="true", BROKER_REDIS_WAIT_REPLICAS="1"
    )
    store = Store.from_settings(settings)
    tokens = make_people(store, settings, args.threads)
    first_app = tokens[0].removeprefix("brk_at_").split(".", 1)[0]
    victim_port = int(store.redis.get_node_from_key(keys.app(first_app)).port)  # its journals
    [victim] = [n for n in cluster.nodes if n.port == victim_port]
    replica_port = int(redis.Redis(port=victim_port).info("replication")["slave0"]["port"])
    [replica] = [n for n in cluster.nodes if n.port == replica_port]
    server = LiveServer(create_app(settings, store), port)
    server.start()
    stop_sequencer = start_in_background(store, Keyring(settings.signing_keys_file), settings)
    load = Load(server.url, tokens)
    try:
        load.start()
        time.sleep(args.before)
        if args.lag_ms > 0:
            os.kill(replica.process.pid, signal.SIGSTOP)
            redis.Redis(port=victim_port).client_kill_filter(_type="replica")
            time.sleep(args.lag_ms / 1000)
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(10)
        killed_at = time.monotonic()
        os.kill(replica.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the cluster promotes the replica
            try:
                if redis.Redis(port=replica_port).info("replication").get("role") == "master":
                    break
            except redis.RedisError:
                pass
            time.sleep(0.1)
        victim.start()  # rejoins (nodes.conf) as a replica of the promoted node
        time.sleep(args.after)
    finally:
        load.stop()
        stop_sequencer.set()
        server.stop()
    final = Store.from_url(f"redis://127.0.0.1:{replica_port}/0", cluster=True)
    outcome = settle_and_check(final, settings, load.sent)
    final.close()
    store.close()
    after = sorted(s.at for s in load.sent if s.status == 200 and s.started > killed_at)
    first = (after[0] - killed_at) if after else None
    return Row("cluster", outcome, len(after), first, "automatic (Cluster)")


def _fmt(row: Row) -> str:
    o = row.outcome
    other = ", ".join(f"{k}: {v}" for k, v in sorted(o.other.items())) or "none"
    first = f"{row.first_ok_after_s:.1f} s" if row.first_ok_after_s is not None else "never"
    return (
        f"| {LABELS[row.setting]} | {o.acknowledged} | **{o.lost}** | **{o.fictional}** | {o.refused} | "
        f"{other} | {first} | {row.repointed} |"
    )


HEADER = (
    "| setting | acknowledged (200) | acknowledged lost | fictional (refused but shown delivered) | "
    "refused (503) | other answers | first 200 (request sent after the kill) | "
    "broker reached the new primary |\n"
    "|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help="comma-separated: " + ", ".join(SETTINGS)
    )
    parser.add_argument(
        "--cluster", action="store_true", help="also a Redis Cluster row (3 masters + replicas)"
    )
    parser.add_argument("--threads", type=int, default=4, help="client threads (one person each)")
    parser.add_argument("--before", type=float, default=4.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=6.0, help="seconds of load after the kill")
    parser.add_argument(
        "--no-voids",
        action="store_true",
        help="measure the broker as it was before voids (refused requests keep their records)",
    )
    parser.add_argument("--lag-ms", type=int, default=1000, help="replica paused (SIGSTOP) before the kill")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the app logs every refused request during the outage
    if args.no_voids:
        from broker.gate import disclosure as gate

        gate.void_request = lambda *a, **k: False  # type: ignore[assignment]
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    runners: list[tuple[str, Callable[[argparse.Namespace, Path], Row]]] = [
        (n, lambda a, t, n=n: run_setting(n, a, t)) for n in names
    ]
    if args.cluster:
        runners.append(("cluster", run_cluster))
    print(
        f"# failover.py: {args.threads} threads, {args.before:g} s before and {args.after:g} s after "
        f"the kill, replica lag {args.lag_ms} ms{', VOIDS OFF' if args.no_voids else ''}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(HEADER)
    for name, runner in runners:
        with tempfile.TemporaryDirectory(prefix=f"failover-{name}-") as tmp:
            row = runner(args, Path(tmp))
        print(_fmt(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
