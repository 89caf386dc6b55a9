"""Where the data API's time goes: an in-process profile of each hot endpoint (issue 17).

For ``GET /v1/me``, userinfo and members pages of 50 and 100, through the Flask app as production
builds it (``create_app``), against a redis-server of its own with AOF ``appendfsync always`` (what
production runs) and ``appendfsync no`` (to separate the disk's share):

* wall time per request, one request at a time (µs), and the Python CPU time in it (``process_time``);
* Redis round trips per request, counted on the wire (tests/support/round_trips.py);
* the functions that take the most of the Python CPU time (cProfile, own time, socket waits left out).

    python benchmarks/hot_path_profile.py [--requests 1000] [--top 12]

A benchmark: it reports, it asserts nothing. The WSGI server is not in this picture (see
peer_bench.py for the whole stack under load).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gate_bench import start_redis

from broker.app import create_app
from broker.config import Settings
from broker.storage.store import Store
from tests.support.apps import org_payload
from tests.support.factories import (
    make_app,
    make_grant,
    make_installation,
    make_org,
    make_token,
    make_user,
)
from tests.support.round_trips import round_trips

WAITS = ("recv_into", "sendall", "poll", "select", "sleep")


def world(store: Store, settings: Settings) -> dict[str, tuple[str, dict[str, str]]]:
    """The requests to profile: (path, headers) by name."""
    from broker.apps import registry
    from broker.core import catalog as catalog_mod

    alice = make_user(store, username="alice")
    mini, _ = make_app(store, settings)
    gid = make_grant(store, settings, mini, alice, "openid profile", "user_id nickname avatar")
    person = make_token(
        store, settings, mini, kind="grant", subject=alice, grant_id=gid, scopes="openid profile"
    )
    members = [make_user(store) for _ in range(100)]
    oid = make_org(store, members, name="Acme")
    catalog = catalog_mod.load(settings.scopes_dir)
    record, _, _ = registry.register_app(store, settings, catalog, org_payload(make_user(store)))
    iid = make_installation(store, record["client_id"], oid)
    org = make_token(
        store,
        settings,
        record["client_id"],
        kind="installation",
        subject=oid,
        grant_id=iid,
        scopes="org.members.read",
    )
    me = {"Authorization": f"Bearer {person}"}
    org_h = {"Authorization": f"Bearer {org}"}
    return {
        "GET /v1/me": ("/v1/me", me),
        "userinfo": ("/oauth/userinfo", me),
        "members page of 50": (f"/v1/orgs/{oid}/members?limit=50", org_h),
        "members page of 100": (f"/v1/orgs/{oid}/members?limit=100", org_h),
    }


def _collapse(names: list[str]) -> str:
    """``HMGET + HMGET + HMGET`` as ``3 x HMGET``."""
    out: list[str] = []
    for name in names:
        if out and out[-1].split(" x ")[-1] == name:
            count = int(out[-1].split(" x ")[0]) if " x " in out[-1] else 1
            out[-1] = f"{count + 1} x {name}"
        else:
            out.append(name)
    return " + ".join(out)


def measure(client: Any, path: str, headers: dict[str, str], requests: int, top: int) -> dict[str, Any]:
    for _ in range(50):
        assert client.get(path, headers=headers).status_code == 200, path
    with round_trips() as trips:
        client.get(path, headers=headers)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(requests):
        client.get(path, headers=headers)
    wall = (time.perf_counter() - wall0) / requests * 1e6
    cpu = (time.process_time() - cpu0) / requests * 1e6
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(requests):
        client.get(path, headers=headers)
    profile.disable()
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, name), (_cc, calls, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if any(w in name for w in WAITS):
            continue
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append((own, f"{where}:{line}({name})", calls))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    return {
        "wall_us": wall,
        "cpu_us": cpu,
        "round_trips": len(trips),
        "trip_names": [_collapse(t) for t in trips],
        "top": [(name, own / total * 100, calls // requests) for own, name, calls in rows[:top]],
    }


def run(fsync: str, requests: int, top: int) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp), fsync)
        try:
            settings = Settings.from_env(
                {
                    "BROKER_DATA_DIR": tmp,
                    "BROKER_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                }
            )
            store = Store.from_url(settings.redis_url)
            app = create_app(settings)
            client = app.test_client()
            return {
                name: measure(client, p, h, requests, top) for name, (p, h) in world(store, settings).items()
            }
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    results = {fsync: run(fsync, args.requests, args.top) for fsync in ("always", "no")}
    print("| request | round trips | wall µs (fsync always) | wall µs (fsync no) | Python CPU µs |")
    print("|---|---|---|---|---|")
    for name, always in results["always"].items():
        no = results["no"][name]
        print(
            f"| {name} | {always['round_trips']} ({'; '.join(always['trip_names'])}) | "
            f"{always['wall_us']:.0f} | {no['wall_us']:.0f} | {no['cpu_us']:.0f} |"
        )
    for name, found in results["no"].items():
        print(f"\n{name}: where the Python CPU time goes (own time, socket waits left out)")
        for where, share, calls in found["top"]:
            print(f"  {share:5.1f}%  {calls:>4} call(s)/request  {where}")


if __name__ == "__main__":
    main()
