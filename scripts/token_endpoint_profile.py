"""Profile the token endpoint (``client_credentials``) and introspection in-process.

Usage: ``python scripts/token_endpoint_profile.py [N] [--profile]`` (default N = 2,000).

Starts its own embedded redis-server (AOF ``appendfsync always``, as ``broker serve`` runs it) in a
scratch directory, registers an org_app through the registry, installs it in one organization, then
sends N ``client_credentials`` requests and N introspection requests through the Flask test client
(no HTTP server, one thread: the cost of the Python path and one Redis client). Prints microseconds
per request for each, once with ``appendfsync always`` and once with ``everysec``, which shows what
the fsync of each token write costs. ``--profile`` adds cProfile's top entries (own time). Python
CPU time per request is reported apart from wall time: on a busy machine wall time is mostly waiting.
Figures go in docs/architecture.md ("Token storage and the token endpoint"); nothing here is a test.
"""

from __future__ import annotations

import base64
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.connection import AbstractConnection

from broker.app import create_app
from broker.apps import registry
from broker.config import Settings
from broker.consent import installations
from broker.core import catalog as catalog_mod
from broker.directory import service as directory
from broker.storage.embedded import EmbeddedRedis
from broker.storage.store import Store


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _seed(store: Store, settings: Settings) -> tuple[str, str, str]:
    catalog = catalog_mod.load(settings.scopes_dir)
    dev = directory.create_user(store, {"username": "dev", "nickname": "Dev"})["id"]
    oid = directory.create_org(store, {"name": "org"})["id"]
    record, secret, _ = registry.register_app(
        store, settings, catalog,
        {"kind": "org_app", "client_type": "confidential", "name": "Profiled", "contact": "d@example.com",
         "privacy_policy_url": "https://app.example.com/privacy", "redirect_uris": ["https://app.example.com/cb"],
         "scopes": ["org.members.read"], "developer_id": dev},
    )  # fmt: skip
    installations.install(store, record["client_id"], oid)
    assert secret is not None
    return record["client_id"], secret, oid


def _run(n: int, send: Any, profile: bool) -> tuple[float, float, float, str]:
    """Wall and CPU microseconds per request, Redis round trips per request, the profile."""
    for _ in range(50):  # warm: scripts loaded, connections open
        send()
    trips = [0]
    original = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        trips[0] += 1
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    profiler = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    try:
        if profiler:
            profiler.enable()
        for _ in range(n):
            send()
        if profiler:
            profiler.disable()
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    wall = (time.perf_counter() - started) / n * 1e6
    cpu_us = (time.process_time() - cpu) / n * 1e6
    report = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        report = out.getvalue()
    return wall, cpu_us, trips[0] / n, report


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 2000
    profile = "--profile" in sys.argv
    with tempfile.TemporaryDirectory() as scratch:
        server = EmbeddedRedis(Path(scratch) / "redis-data")
        url = server.start()
        try:
            settings = Settings.from_env(
                {"BROKER_DATA_DIR": str(Path(scratch) / "data"), "BROKER_REDIS_URL": url,
                 "BROKER_ISSUER": "http://127.0.0.1:8000", "BROKER_LOG_LEVEL": "WARNING"}
            )  # fmt: skip
            store = Store.from_url(url)
            cid, secret, oid = _seed(store, settings)
            app = create_app(settings, store)
            client = app.test_client()
            headers = _basic(cid, secret)
            form = {"grant_type": "client_credentials", "org_id": oid}
            token = client.post("/oauth/token", data=form, headers=headers).get_json()["access_token"]

            def issue() -> None:
                response = client.post("/oauth/token", data=form, headers=headers)
                assert response.status_code == 200, response.get_data(as_text=True)

            def introspect() -> None:
                response = client.post("/oauth/introspect", data={"token": token}, headers=headers)
                assert response.get_json()["active"] is True

            for fsync in ("always", "everysec"):
                store.redis.config_set("appendfsync", fsync)
                for name, send in (("client_credentials", issue), ("introspection", introspect)):
                    wall, cpu, trips, report = _run(n, send, profile and fsync == "always")
                    print(f"{name:20s} appendfsync {fsync:8s} wall {wall:7.0f} us  python cpu {cpu:6.0f} us  "
                          f"redis round trips {trips:.1f} per request ({n:,} requests)")  # fmt: skip
                    if report:
                        print(report)
            store.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
