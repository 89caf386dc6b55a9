"""Metrics and logs of a real ``broker demo`` (granian, 2 workers, preloaded app): ``/metrics`` sums
every worker, dead ones included; it is refused without the token on the main port and served on the
separate metrics port; every request leaves one JSON access line with the caller's request id and
trace id, and never a token (docs/observability.md).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from broker.storage.embedded import free_port
from tests.support.broker_process import Broker, kill_all

pytestmark = pytest.mark.slow

METRICS_TOKEN = "metrics-" + "m" * 40


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, dict[str, Any]]]:
    tmp_path = tmp_path_factory.mktemp("metrics-demo")
    creds = tmp_path / "creds.json"
    broker = Broker(
        tmp_path,
        BROKER_METRICS_TOKEN=METRICS_TOKEN,
        BROKER_METRICS_PORT=str(free_port()),
        BROKER_LOG_FORMAT="json",
    )
    broker.env["BROKER_WORKERS"] = "2"
    broker.args = ("demo", "--port", str(broker.port), "--credentials-out", str(creds))
    del broker.env["BROKER_ISSUER"]
    stale = tmp_path / "data" / "metrics" / "999999999"  # a run of a server long gone (no such pid)
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"")
    try:
        broker.start()
        yield broker, json.loads(creds.read_text())
    finally:
        kill_all([broker])


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def worker_pids(master: int) -> set[int]:
    """The server workers: the master's children other than its embedded redis-server."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == master and b"redis" not in cmdline:
            found.add(int(proc.name))
    return found


def org_token(broker: Broker, creds: dict[str, Any]) -> tuple[str, str]:
    app, acme = creds["apps"]["org_app"], creds["orgs"]["acme"]["id"]
    response = requests.post(
        f"{broker.url}/oauth/token",
        data={"grant_type": "client_credentials", "org_id": acme},
        auth=(app["client_id"], app["client_secret"]),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"], acme


def disclose(broker: Broker, token: str, org: str, times: int) -> int:
    """``times`` member listings, each on a new connection; returns the records they disclosed."""
    records = 0
    for _ in range(times):
        response = requests.get(
            f"{broker.url}/v1/orgs/{org}/members",
            headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        records += len(response.json()["members"])
    return records


def test_metrics_sum_every_worker_and_are_protected(demo: tuple[Broker, dict[str, Any]]) -> None:
    broker, creds = demo
    metrics_url = f"{broker.url}/metrics"
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}

    # refused on the main port without (or with a wrong) token; nothing leaks in the refusal
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {METRICS_TOKEN}"}):
        refused = requests.get(metrics_url, headers=headers, timeout=10)
        assert refused.status_code == 401
        assert "broker_" not in refused.text
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")

    before = scrape(metrics_url, **auth)
    token, acme = org_token(broker, creds)
    first = disclose(broker, token, acme, 6)
    assert first > 0

    # Restart every worker (SIGHUP: new workers, the old ones exit gracefully): the totals must
    # still include what the dead workers counted, plus what the new ones count.
    # Both workers up first (the second may still be booting, or be replaced, on a loaded machine).
    deadline = time.monotonic() + 60
    old = worker_pids(broker.process.pid)
    while len(old) != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        old = worker_pids(broker.process.pid)
    assert len(old) == 2, old
    os.kill(broker.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = worker_pids(broker.process.pid)
        if len(current) == 2 and not current & old:
            break
        time.sleep(0.2)
    assert len(current) == 2 and not current & old, (old, current)
    second = disclose(broker, token, acme, 4)

    after = scrape(metrics_url, **auth)
    disclosed = value(after, "broker_disclosures_total", kind="installation") - value(
        before, "broker_disclosures_total", kind="installation"
    )
    assert disclosed == first + second
    # the files of the old workers and of the new ones were all read, from this run's directory only
    assert [p.name for p in (broker.tmp_path / "data" / "metrics").iterdir()] == [str(broker.process.pid)]
    run_dir = broker.tmp_path / "data" / "metrics" / str(broker.process.pid)
    counter_files = {p.name for p in run_dir.glob("counter_*.db")}
    assert {f"counter_{pid}.db" for pid in old | current} <= counter_files

    issued = value(after, "broker_token_issuance_total", grant="client_credentials", outcome="issued")
    assert (
        issued - value(before, "broker_token_issuance_total", grant="client_credentials", outcome="issued")
        == 1
    )

    # requests by route (the URL rule, never an id) and status, with a latency histogram
    route = "/v1/orgs/<org_id>/members"
    count = value(
        after, "broker_http_request_duration_seconds_count", route=route, method="GET", status="200"
    )
    assert (
        count
        - value(before, "broker_http_request_duration_seconds_count", route=route, method="GET", status="200")
        == 10
    )
    assert (
        value(
            after,
            "broker_http_request_duration_seconds_bucket",
            route=route,
            method="GET",
            status="200",
            le="+Inf",
        )
        == count
    )
    text = requests.get(metrics_url, headers=auth, timeout=10).text
    assert acme not in text and token not in text

    # a refused token is counted by reason; nothing is disclosed for it
    client_id = creds["apps"]["org_app"]["client_id"]
    bad = requests.get(
        f"{broker.url}/v1/orgs/{acme}/members",
        headers={"Authorization": f"Bearer brk_at_{client_id}.{'x' * 43}"},
        timeout=10,
    )
    assert bad.status_code == 401
    refusals = scrape(metrics_url, **auth)
    assert (
        value(refusals, "broker_gate_refusals_total", reason="invalid_token")
        == value(after, "broker_gate_refusals_total", reason="invalid_token") + 1
    )
    assert value(refusals, "broker_disclosures_total", kind="installation") == value(
        after, "broker_disclosures_total", kind="installation"
    )
    # the sequencer reports its backlog; the records drain into the ledger
    assert ("broker_ledger_pending_records", ()) in refusals
    assert ("broker_ledger_oldest_pending_seconds", ()) in refusals

    # the separate metrics port serves the same totals without a token
    port = broker.env["BROKER_METRICS_PORT"]
    separate = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(separate, "broker_disclosures_total", kind="installation") == value(
        refusals, "broker_disclosures_total", kind="installation"
    )


def test_one_json_access_line_per_request_with_ids_and_no_token(demo: tuple[Broker, dict[str, Any]]) -> None:
    broker, creds = demo
    token, acme = org_token(broker, creds)
    request_id = "probe-7f3a.request:42"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    # a token in the query string and in the Authorization header: neither may reach a log line
    response = requests.get(
        f"{broker.url}/v1/orgs/{acme}/members?access_token={token}&limit=5",
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id, "traceparent": traceparent},
        timeout=10,
    )
    assert response.headers["X-Request-Id"] == request_id
    refused = requests.get(
        f"{broker.url}/v1/orgs/{acme}/members", headers={"X-Request-Id": "bad id\twith spaces"}, timeout=10
    )
    generated = refused.headers["X-Request-Id"]
    assert generated != "bad id\twith spaces" and len(generated) == 16

    deadline = time.monotonic() + 30
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in broker.output().splitlines() if line.startswith("{")]
        if {line.get("request_id") for line in lines if line["logger"] == "broker.access"} >= {
            request_id,
            generated,
        }:
            break
        time.sleep(0.2)
    access = [
        line for line in lines if line["logger"] == "broker.access" and line.get("request_id") == request_id
    ]
    assert len(access) == 1, access
    line = access[0]
    assert line["trace_id"] == trace_id and line["parent_id"] == "00f067aa0ba902b7"
    assert line["route"] == "/v1/orgs/<org_id>/members"
    assert line["method"] == "GET" and line["status"] == response.status_code
    assert isinstance(line["duration_ms"], float) and line["level"] == "INFO"
    assert "access_token" not in json.dumps(line) and acme not in json.dumps(line)
    # the server's (granian's) own lines are in the same format
    assert any(entry["logger"] == "_granian" for entry in lines)
    assert token not in broker.output()


def test_a_stopped_server_removes_its_metrics_directory(demo: tuple[Broker, dict[str, Any]]) -> None:
    broker, _ = demo
    run_dir = broker.tmp_path / "data" / "metrics" / str(broker.process.pid)
    assert run_dir.is_dir()
    assert broker.stop() == 0
    assert not run_dir.exists()


def test_the_webhook_worker_serves_its_own_metrics(tmp_path: Path, redis_server: Any, store: Any) -> None:
    import subprocess
    import sys

    from broker.events import outbox as events
    from broker.storage import keys
    from tests.support.environment import ROOT, broker_env

    client_id = "app_00000000000000bb"  # no webhook URL: its events are undeliverable
    store.redis.hset(keys.app(client_id), mapping={"client_id": client_id, "status": "active"})
    store.redis.zadd(keys.apps_all(), {client_id: time.time()})
    pipe = store.redis.pipeline(transaction=True)
    events.emit(pipe, client_id, "grant.created", {"user": "u_pairwise"})
    pipe.execute()

    port = free_port()
    env = broker_env(tmp_path, BROKER_REDIS_URL=redis_server.url, BROKER_WORKER_METRICS_PORT=str(port))
    command = [sys.executable, "-m", "broker", "worker"]
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        undeliverable = 0.0
        while time.monotonic() < deadline and not undeliverable:
            assert worker.poll() is None, log.read_text()
            try:
                samples = scrape(f"http://127.0.0.1:{port}/metrics")
            except requests.ConnectionError:  # not listening yet
                samples = {}
            undeliverable = value(samples, "broker_webhook_deliveries_total", outcome="undeliverable")
            time.sleep(0.2)
        assert undeliverable >= 1, log.read_text()
        assert ("broker_ledger_pending_records", ()) in samples

        # a second worker on the same port says why it cannot start
        second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert f"BROKER_WORKER_METRICS_PORT: cannot listen on 127.0.0.1:{port}" in second.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
