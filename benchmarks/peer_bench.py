"""Side by side on loopback: ``broker serve``, node-oidc-provider and the same-stack floor, one wrk.

Not a test: it measures and prints a table (issue 17, "What to build" 1). One command:

    .venv/bin/python benchmarks/peer_bench.py [--rounds 3] [--duration 8] [--connections 16]
        [--servers granian,gunicorn]

What it starts:

* **the Node peer**: node-oidc-provider 9.x (``npm install oidc-provider@9`` into
  ``benchmarks/.peer-cache``, once; ``--reinstall`` to refresh), one ``node`` process, its in-memory
  adapter, ``benchmarks/peer/server.mjs``: one confidential client, client_credentials,
  introspection, and a user access token (scope ``openid profile``) minted at start-up for its
  userinfo ``/me``;
* **the broker** as production runs it: ``python -m broker serve`` (granian WSGI, app built in the
  master, ``BROKER_WORKERS`` 2 x ``BROKER_THREADS`` 8, embedded redis-server with AOF ``appendfsync always``,
  log level INFO to a file). Its data directory is seeded first by ``python -m broker demo
  --credentials-out`` (people, an org with its members, the org app, the mini program), which is
  then stopped; a person token comes from the code flow with PKCE through the login and consent
  pages (``tests.support.journey.person_tokens``) and an org token from client_credentials;
* **the floor** (``benchmarks/floor_app.py``): Flask with redis-py, one ``MULTI`` (GET + XADD) per
  request against its own redis-server with ``appendfsync always``, and its no-I/O ``/hello``, on
  each server of ``--servers`` (default both, so that one run shows the choice of ``broker serve``'s
  server measured): ``granian`` (WSGI, 2 workers x 8 blocking threads, as ``broker serve``) and
  ``gunicorn`` (gthread 2 x 8, preloaded). They share the floor's redis-server and take their turns
  in the same interleaved rounds as the broker and the peer (``floor-granian``, ``floor-gunicorn``).

Load: Debian's ``wrk`` (``apt-get install wrk``), ``-t1 -c16 --latency``, the same for every server.
Each endpoint is measured in rounds, the servers interleaved within a round (broker, peer, floors,
broker, peer, floors, ...), after a short unrecorded warm-up of each. The figures are the medians of
the rounds. node-oidc-provider's in-memory store is an LRU of 1,000 entries that every issued token
enters, so client_credentials runs last (the peer's user token must survive until then).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.storage.embedded import free_port  # noqa: E402
from tests.support.journey import org_token, person_tokens  # noqa: E402
from tests.support.redis_servers import RedisServer, server_binary  # noqa: E402

CACHE = ROOT / "benchmarks" / ".peer-cache"
PEER_JS = ROOT / "benchmarks" / "peer" / "server.mjs"
PEER_PACKAGE = "oidc-provider@9"


# --- servers -----------------------------------------------------------------------------------


def wait_http(url: str, proc: subprocess.Popen[Any], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: server exited with {proc.returncode}\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} not ready\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def install_peer(reinstall: bool) -> str:
    """node-oidc-provider into the scratch directory; returns its version."""
    package_json = CACHE / "node_modules" / "oidc-provider" / "package.json"
    if reinstall and CACHE.exists():
        shutil.rmtree(CACHE)
    if not package_json.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "package.json").write_text('{"private": true, "type": "module"}\n')
        print(f"npm install {PEER_PACKAGE} into {CACHE}", flush=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", PEER_PACKAGE],
            cwd=CACHE,
            check=True,
            timeout=600,
        )
    shutil.copy(PEER_JS, CACHE / "server.mjs")  # resolves 'oidc-provider' from CACHE/node_modules
    return str(json.loads(package_json.read_text())["version"])


def start_peer(tmp: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    port = free_port()
    log = tmp / "peer.log"
    proc = subprocess.Popen(
        ["node", "server.mjs", str(port)],
        cwd=CACHE,
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),  # noqa: SIM115 - lives as long as the process
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    while line and not line.startswith("{"):  # NOTICE lines first, then the JSON one with the tokens
        line = proc.stdout.readline()
    if not line.startswith("{"):
        stop(proc)
        raise SystemExit(f"the Node peer did not start: {line}\n{log.read_text()[-3000:]}")
    info = json.loads(line)
    info["base"] = f"http://127.0.0.1:{port}"
    return proc, info


def broker_env(tmp: Path, port: int, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.update(
        {
            "BROKER_DATA_DIR": str(tmp / "broker-data"),
            "BROKER_ISSUER": f"http://127.0.0.1:{port}",
            "BROKER_PORT": str(port),
            "BROKER_WORKERS": str(workers),
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def start_broker(tmp: Path, workers: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Seed with ``broker demo``, stop it, then ``broker serve`` on the same data directory."""
    port = free_port()
    env = broker_env(tmp, port, workers)
    base = f"http://127.0.0.1:{port}"
    creds_file = tmp / "creds.json"
    log = tmp / "broker-demo.log"
    demo = subprocess.Popen(
        [sys.executable, "-m", "broker", "demo", "--credentials-out", str(creds_file)],
        env=env,
        cwd=ROOT,
        stdout=open(log, "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"{base}/readyz", demo, log)
        deadline = time.monotonic() + 30
        while not creds_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop(demo)
    creds = json.loads(creds_file.read_text())
    log = tmp / "broker-serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve"],
        env=env,
        cwd=ROOT,
        stdout=open(log, "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    wait_http(f"{base}/readyz", proc, log)
    person = person_tokens(base, creds)  # code flow + PKCE through login and consent
    org = creds["orgs"]["acme"]["id"]
    app = creds["apps"]["org_app"]
    info = {
        "base": base,
        "person_token": person["access_token"],
        "org_token": org_token(base, creds),
        "org_id": org,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
    }
    members = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/v1/orgs/{org}/members", headers={"Authorization": f"Bearer {info['org_token']}"}
    )
    with urllib.request.urlopen(members) as resp:  # noqa: S310 - loopback
        body = json.loads(resp.read())
    info["members"] = len(body.get("members", body.get("items", [])))
    return proc, info


FLOOR_SERVERS = ("granian", "gunicorn")


def floor_command(server: str, port: int, workers: int, threads: int) -> list[str]:
    """The floor app on ``server``, configured as ``broker serve`` configures it (or did)."""
    bin_dir = Path(sys.executable).parent
    if server == "granian":
        return [
            str(bin_dir / "granian"),
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--blocking-threads",
            str(threads),
            "--no-ws",
            "benchmarks.floor_app:app",
        ]
    return [
        str(bin_dir / "gunicorn"),
        "--worker-class",
        "gthread",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--preload",
        "benchmarks.floor_app:app",
    ]


def start_floor(
    tmp: Path, server: str, redis: RedisServer, workers: int, threads: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = tmp / f"floor-{server}.log"
    proc = subprocess.Popen(
        floor_command(server, port, workers, threads),
        env={**os.environ, "FLOOR_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=open(log, "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/redis", proc, log)
    return proc, base


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Target:
    server: str  # broker, peer, floor
    label: str  # what is requested
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # a POST body (form-encoded), else GET


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def connections_per_process(port: int) -> str:
    """How the load's keep-alive connections are spread over the server's processes (``ss -p``):
    gunicorn's gthread workers each accept what they can, so all 16 may land on one of two;
    granian's workers listen with ``SO_REUSEPORT`` and the kernel spreads them."""
    try:
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except OSError:
        return "?"
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return "+".join(str(n) for n in sorted(counts.values(), reverse=True)) or "?"


def wrk(target: Target, seconds: int, connections: int, scripts: Path) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in target.headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if target.body is not None:
        script = scripts / f"post-{abs(hash((target.url, target.body)))}.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(target.body)}\n"
            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        )
        cmd += ["-s", str(script)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([*cmd, target.url], stdout=subprocess.PIPE, text=True)
    time.sleep(min(1.0, seconds / 2))
    split = connections_per_process(urlsplit(target.url).port or 80)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed: {out}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "non2xx": 0.0,
        "socket_errors": 0.0,
        "wrk_cpu": wrk_cpu / seconds,  # the load generator's share of one CPU
        "split": split,  # type: ignore[dict-item]
    }
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        result["non2xx"] = float(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["socket_errors"] = float(sum(int(g) for g in m.groups()))
    return result


def check(target: Target) -> None:
    """One request, which must answer 200 (a token evicted or refused would skew the run)."""
    data = target.body.encode() if target.body is not None else None
    headers = dict(target.headers)
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(target.url, data=data, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
        body = resp.read()
        if resp.status != 200 or b'"active":false' in body.replace(b" ", b""):
            raise SystemExit(f"{target.server} {target.label}: {resp.status} {body[:300]!r}")


# --- the run -------------------------------------------------------------------------------------


def cases(
    broker: dict[str, Any], peer: dict[str, Any], floors: dict[str, str]
) -> list[tuple[str, list[Target]]]:
    person = {"Authorization": f"Bearer {broker['person_token']}"}
    org = {"Authorization": f"Bearer {broker['org_token']}"}
    user = {"Authorization": f"Bearer {peer['user_token']}"}
    broker_client = {"Authorization": basic(broker["client_id"], broker["client_secret"])}
    peer_client = {"Authorization": basic(peer["client_id"], peer["client_secret"])}
    peer_me = Target("peer", "/me", f"{peer['base']}/me", user)
    floor_redis = [
        Target(f"floor-{name}", "/redis (MULTI GET+XADD)", f"{base}/redis") for name, base in floors.items()
    ]
    floor_hello = [
        Target(f"floor-{name}", "/hello (no I/O)", f"{base}/hello") for name, base in floors.items()
    ]
    b, p = broker["base"], peer["base"]
    return [
        ("floor hello", floor_hello),
        ("GET /v1/me", [Target("broker", "GET /v1/me", f"{b}/v1/me", person), peer_me, *floor_redis]),
        (
            "userinfo",
            [Target("broker", "GET /oauth/userinfo", f"{b}/oauth/userinfo", person), peer_me, *floor_redis],
        ),
        (
            f"GET /v1/orgs/<org>/members ({broker['members']} members)",
            [
                Target("broker", "members", f"{b}/v1/orgs/{broker['org_id']}/members", org),
                peer_me,
                *floor_redis,
            ],
        ),
        (
            "introspection",
            [
                Target(
                    "broker",
                    "POST /oauth/introspect (org token)",
                    f"{b}/oauth/introspect",
                    broker_client,
                    urlencode({"token": broker["org_token"]}),
                ),
                Target(
                    "peer",
                    "/token/introspection",
                    f"{p}/token/introspection",
                    peer_client,
                    urlencode({"token": peer["cc_token"]}),
                ),
            ],
        ),
        (  # last: every peer token enters its 1,000-entry LRU and evicts the user token
            "client_credentials",
            [
                Target(
                    "broker",
                    "POST /oauth/token client_credentials",
                    f"{b}/oauth/token",
                    broker_client,
                    urlencode({"grant_type": "client_credentials", "org_id": broker["org_id"]}),
                ),
                Target(
                    "peer",
                    "/token",
                    f"{p}/token",
                    peer_client,
                    urlencode({"grant_type": "client_credentials"}),
                ),
            ],
        ),
    ]


def versions(peer_version: str) -> dict[str, str]:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return "?"

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    wrk_version = out("wrk", "-v") or subprocess.run(["wrk", "-v"], capture_output=True, text=True).stderr
    return {
        "cpu": f"{os.cpu_count()} x {cpu}",
        "python": platform.python_version(),
        "node": out("node", "--version"),
        "oidc-provider": peer_version,
        "wrk": wrk_version.splitlines()[0] if wrk_version else "?",
        "redis-server (broker, floor)": out(server_binary(), "--version").split(" sha=")[0],
        "granian": _dist_version("granian"),
        "gunicorn": _dist_version("gunicorn"),
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def parse_servers(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FLOOR_SERVERS]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"a comma-separated list of distinct servers out of {', '.join(FLOOR_SERVERS)}"
        )
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded warm-up per server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--servers",
        type=parse_servers,
        default=list(FLOOR_SERVERS),
        help="servers to run the floor app on, interleaved in the same rounds (default: granian,gunicorn)",
    )
    parser.add_argument("--reinstall", action="store_true", help="npm install the peer afresh")
    parser.add_argument("--json-out", type=Path, help="also write every measurement as JSON here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")

    peer_version = install_peer(args.reinstall)
    tmp = Path(tempfile.mkdtemp(prefix="peer-bench-"))
    procs: list[subprocess.Popen[Any]] = []
    floor_redis: RedisServer | None = None
    raw: dict[str, dict[str, list[dict[str, float]]]] = {}
    labels: dict[str, dict[str, str]] = {}
    load_before = os.getloadavg()
    began = time.time()
    try:
        broker_proc, broker = start_broker(tmp, args.workers)
        procs.append(broker_proc)
        floor_redis = RedisServer(tmp / "floor-redis")
        floor_redis.start()
        floors: dict[str, str] = {}
        for server in args.servers:
            floor_proc, floors[server] = start_floor(tmp, server, floor_redis, args.workers, args.threads)
            procs.append(floor_proc)
        peer_proc, peer = start_peer(tmp)  # last: its tokens are fresh and its LRU empty
        procs.append(peer_proc)
        for case, targets in cases(broker, peer, floors):
            for target in targets:
                check(target)
                wrk(target, args.warmup, args.connections, tmp)
            raw[case] = {t.server: [] for t in targets}
            labels[case] = {t.server: t.label for t in targets}
            for rnd in range(args.rounds):
                for target in targets:
                    result = wrk(target, args.duration, args.connections, tmp)
                    raw[case][target.server].append(result)
                    print(
                        f"round {rnd + 1} {case:<40} {target.server:<6} {result['rps']:>8.0f} req/s  "
                        f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                        f"non-2xx {result['non2xx']:.0f}  socket errors {result['socket_errors']:.0f}  "
                        f"wrk CPU {result['wrk_cpu']:.0%}  connections per process {result['split']}",
                        flush=True,
                    )
            for target in targets:  # still valid at the end (the peer's LRU, the broker's TTL)
                if target.body is None or "introspect" in target.url:
                    check(target)
    finally:
        for proc in reversed(procs):
            stop(proc)
        if floor_redis is not None:
            floor_redis.stop()
    load_after = os.getloadavg()

    def med(case: str, server: str, key: str) -> float:
        return statistics.median(r[key] for r in raw[case][server])

    info = versions(peer_version)
    print()
    print(f"date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime(began))}, {time.time() - began:.0f} s")
    for name, value in info.items():
        print(f"{name}: {value}")
    loads = [" ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after)]
    print(f"load average before: {loads[0]}; after: {loads[1]}")
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s --latency; {args.rounds} rounds, medians; "
        f"broker: broker serve (granian) {args.workers} workers x {args.threads} threads; floor app on "
        f"{', '.join(args.servers)} with the same workers and threads\n"
    )
    floors = [f"floor-{server}" for server in args.servers]
    header = "| endpoint | broker req/s (p50 / p99 ms) | peer req/s (p50 / p99 ms) | broker / peer "
    for floor in floors:
        header += f"| {floor} /redis req/s (p50 / p99 ms) | broker / {floor} "
    print(header + "| non-2xx |")
    print("|---" * (5 + 2 * len(floors)) + "|")

    def cell(case: str, server: str) -> str:
        if server not in raw[case]:
            return "-"
        return (
            f"{med(case, server, 'rps'):,.0f} ({med(case, server, 'p50_ms'):.1f} / "
            f"{med(case, server, 'p99_ms'):.1f})"
        )

    for case in raw:
        if case == "floor hello":
            continue
        ratio_peer = med(case, "broker", "rps") / med(case, "peer", "rps")
        errors = sum(r["non2xx"] + r["socket_errors"] for runs in raw[case].values() for r in runs)
        row = f"| {case} | {cell(case, 'broker')} | {cell(case, 'peer')} ({labels[case]['peer']}) "
        row += f"| {ratio_peer:.2f} "
        for floor in floors:
            ratio = (
                f"{med(case, 'broker', 'rps') / med(case, floor, 'rps'):.2f}" if floor in raw[case] else "-"
            )
            row += f"| {cell(case, floor)} | {ratio} "
        print(row + f"| {errors:.0f} |")

    # The server choice: the same floor app on each server, from the same interleaved rounds.
    def pooled(path: str, floor: str) -> list[dict[str, Any]]:
        return [
            r
            for case in raw
            if (case == "floor hello") == (path == "/hello") and floor in raw[case]
            for r in raw[case][floor]
        ]

    def pooled_cell(runs: list[dict[str, Any]]) -> str:
        if not runs:
            return "-"
        rps = statistics.median(r["rps"] for r in runs)
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        return f"{rps:,.0f} ({p50:.1f} / {p99:.1f})"

    print("\nThe floor app on each server (medians over every run of that path in this run):\n")
    print("| floor path | " + " | ".join(f"{f} req/s (p50 / p99 ms)" for f in floors) + " | runs |")
    print("|---" * (len(floors) + 2) + "|")
    for path in ("/redis", "/hello"):
        runs = {floor: pooled(path, floor) for floor in floors}
        count = "/".join(str(len(r)) for r in runs.values())
        print(f"| `{path}` | " + " | ".join(pooled_cell(r) for r in runs.values()) + f" | {count} |")
    if {"floor-granian", "floor-gunicorn"} <= set(floors):
        for path in ("/redis", "/hello"):
            granian = pooled(path, "floor-granian")
            gunicorn = pooled(path, "floor-gunicorn")
            if granian and gunicorn:
                ratio = statistics.median(r["rps"] for r in granian) / statistics.median(
                    r["rps"] for r in gunicorn
                )
                print(f"granian / gunicorn on `{path}`: {ratio:.2f}")

    busiest = max(r["wrk_cpu"] for runs in raw.values() for rs in runs.values() for r in rs)
    print(f"\nwrk's own CPU, at most {busiest:.0%} of one core in any run (of {os.cpu_count()} cores)")
    for server in ("broker", *floors):
        splits = [r["split"] for c in raw.values() for srv, rs in c.items() if srv == server for r in rs]
        if splits:
            alone = sum(1 for split in splits if "+" not in str(split))
            print(f"{server}: all connections in one worker in {alone} of {len(splits)} runs")
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {"info": info, "args": vars(args) | {"json_out": str(args.json_out)}, "raw": raw}, indent=1
            )
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
