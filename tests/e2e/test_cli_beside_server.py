"""Operator commands beside a running broker (issue 10, item 5), through the real CLI.

The CLI finds the running broker's embedded Redis from the data directory and uses it; only a
second *server* on the same directory is refused. With no broker running, a command starts the
embedded Redis itself (tests/ledger/test_ledger_verify.py, tests/test_directory_cli.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from broker.storage.embedded import free_port
from tests.support.broker_process import Broker
from tests.support.environment import ROOT, broker_env
from tests.support.environment import broker_cli as cli

pytestmark = pytest.mark.slow


def demo(tmp_path: Path) -> tuple[Broker, dict[str, dict[str, dict[str, str]]]]:
    creds = tmp_path / "creds.json"
    broker = Broker(tmp_path)
    broker.args = ("demo", "--port", str(broker.port), "--credentials-out", str(creds))
    del broker.env["BROKER_ISSUER"]
    broker.start()
    return broker, json.loads(creds.read_text())


def test_operator_commands_use_the_running_brokers_redis(tmp_path: Path, brokers: list[Broker]) -> None:
    broker, creds = demo(tmp_path)
    brokers.append(broker)
    redis_pid = (tmp_path / "data" / "redis" / "redis.pid").read_text()
    app, acme = creds["apps"]["org_app"], creds["orgs"]["acme"]["id"]
    token = requests.post(
        f"{broker.url}/oauth/token",
        data={"grant_type": "client_credentials", "org_id": acme},
        auth=(app["client_id"], app["client_secret"]),
        timeout=10,
    ).json()["access_token"]
    members = f"{broker.url}/v1/orgs/{acme}/members"
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(members, headers=auth, timeout=10).status_code == 200

    verified = cli(tmp_path, "ledger", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "another broker" not in verified.stderr

    suspended = cli(tmp_path, "apps", "suspend", app["client_id"])
    assert suspended.returncode == 0, suspended.stderr
    assert suspended.stdout.strip().endswith(": suspended")
    refused = requests.get(members, headers=auth, timeout=10)  # the very next request
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"

    restored = cli(tmp_path, "apps", "restore", app["client_id"])
    assert restored.returncode == 0, restored.stderr
    assert requests.get(members, headers=auth, timeout=10).status_code == 401  # restoring revives no token
    token = requests.post(
        f"{broker.url}/oauth/token",
        data={"grant_type": "client_credentials", "org_id": acme},
        auth=(app["client_id"], app["client_secret"]),
        timeout=10,
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(members, headers=auth, timeout=10).status_code == 200

    # The export lists sequenced records; the server's sequencer runs on its own, so wait for it.
    deadline = time.monotonic() + 30
    while True:
        exported = cli(tmp_path, "ledger", "export", "--org", acme)
        assert exported.returncode == 0, exported.stderr
        lines = [line for line in exported.stdout.splitlines() if line.strip()]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(lines) >= 2, exported.stdout

    # The commands used the server's redis-server: it is the same process, still answering.
    assert (tmp_path / "data" / "redis" / "redis.pid").read_text() == redis_pid
    assert requests.get(f"{broker.url}/readyz", timeout=10).status_code == 200


def test_worker_runs_beside_the_server(tmp_path: Path, brokers: list[Broker]) -> None:
    brokers.append(Broker(tmp_path).start())
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "broker", "worker"],
            env=broker_env(tmp_path),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "webhook worker started" not in log.read_text():
            assert worker.poll() is None, log.read_text()
            time.sleep(0.1)
        assert "webhook worker started" in log.read_text()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_second_server_is_still_refused_and_once_alone_commands_start_their_own_redis(
    tmp_path: Path, brokers: list[Broker]
) -> None:
    broker = Broker(tmp_path)
    brokers.append(broker.start())
    for command in ("serve", "demo"):
        second = cli(tmp_path, command, "--port", str(free_port()))
        assert second.returncode == 2
        assert "another broker (pid " in second.stderr
        assert "is already running on data directory" in second.stderr
    assert broker.stop() == 0
    assert not (tmp_path / "data" / "redis" / "redis.url").exists()  # the owner removed its record
    alone = cli(tmp_path, "ledger", "verify")
    assert alone.returncode == 0, alone.stderr
    assert "starting embedded redis-server" in alone.stderr


def test_a_data_directory_locked_by_a_broker_whose_redis_does_not_answer_is_explained(
    tmp_path: Path,
) -> None:
    """The lock is held (here by a plain process) but no Redis answers: the command says so."""
    data = tmp_path / "data"
    data.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "f.write('4242'); f.flush(); print('locked', flush=True); time.sleep(120)",
            str(data / "broker.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = cli(tmp_path, "ledger", "verify")
        assert result.returncode == 2
        assert "another broker (pid 4242) is already running on data directory" in result.stderr
        assert "its Redis did not answer" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        holder.kill()
        holder.wait()
