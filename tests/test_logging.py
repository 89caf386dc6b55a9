"""Structured logs: one access line per request (request id, trace id, route, status, latency; never a
token), the caller's ``X-Request-Id`` and ``traceparent`` accepted only when well-formed, the log
format setting, and progress drawn only on a terminal. The real server's JSON lines (granian's
included) are checked in tests/e2e/test_metrics_e2e.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.config import ConfigError, Settings
from broker.observability.logs import JsonFormatter, TextFormatter
from broker.storage.store import Store
from tests.support.client import bearer
from tests.support.environment import ROOT, broker_env
from tests.support.factories import make_installation, make_org, make_token, make_user, raw_app
from tests.support.ledger import journal_records

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """What ``broker.access`` writes, in the JSON format."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("broker.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def org(store: Store, settings: Settings) -> dict[str, Any]:
    people = [make_user(store, nickname=f"member{i}") for i in range(2)]
    oid = make_org(store, people)
    cid = raw_app(store, kind="org_app")
    iid = make_installation(store, cid, oid)
    token = make_token(
        store, settings, cid, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    return {"oid": oid, "client_id": cid, "token": token}


def test_one_access_line_per_request_with_ids_and_no_token(
    client: Any, org: dict[str, Any], access_lines: io.StringIO
) -> None:
    token = org["token"]
    response = client.get(
        f"/v1/orgs/{org['oid']}/members?access_token={token}",
        headers={**bearer(token), "X-Request-Id": "lb-1234:abc.def_9", "traceparent": TRACEPARENT},
    )
    assert response.headers["X-Request-Id"] == "lb-1234:abc.def_9"
    [line] = lines(access_lines)
    assert line["request_id"] == "lb-1234:abc.def_9"
    assert line["trace_id"] == TRACE_ID and line["parent_id"] == "00f067aa0ba902b7"
    assert line["logger"] == "broker.access" and line["level"] == "INFO"
    assert line["method"] == "GET" and line["route"] == "/v1/orgs/<org_id>/members"
    assert line["status"] == response.status_code == 400  # the members API takes no access_token
    assert isinstance(line["duration_ms"], float)
    assert token not in access_lines.getvalue()
    assert "access_token" not in access_lines.getvalue() and org["oid"] not in access_lines.getvalue()


@pytest.mark.parametrize(
    "sent",
    ["", "a" * 129, "has space", "semi;colon", "tab\tbed", "ünïcode", "<script>", 'quote"d'],
)
def test_an_unsafe_request_id_is_replaced(client: Any, access_lines: io.StringIO, sent: str) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": sent})
    generated = response.headers["X-Request-Id"]
    assert generated != sent and len(generated) == 16 and int(generated, 16) >= 0
    assert lines(access_lines)[0]["request_id"] == generated


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE_ID}-0000000000000000-01",  # all-zero parent id
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # uppercase hex
        f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",  # version 00 has exactly four fields
    ],
)
def test_an_invalid_traceparent_is_ignored(client: Any, access_lines: io.StringIO, traceparent: str) -> None:
    assert client.get("/healthz", headers={"traceparent": traceparent}).status_code == 200
    assert "trace_id" not in lines(access_lines)[0]


def test_a_later_traceparent_version_with_more_fields_is_read(client: Any, access_lines: io.StringIO) -> None:
    client.get("/healthz", headers={"traceparent": f"01-{TRACE_ID}-00f067aa0ba902b7-01-what-comes-next"})
    assert lines(access_lines)[0]["trace_id"] == TRACE_ID


def test_a_request_refused_before_any_view_still_has_its_id_and_line(
    client: Any, access_lines: io.StringIO
) -> None:
    """CSRF protection runs before the views: its refusal is logged with the caller's id too."""
    response = client.post("/login", data={"username": "x"}, headers={"X-Request-Id": "csrf-probe"})
    assert response.status_code == 400
    assert response.headers["X-Request-Id"] == "csrf-probe"
    [line] = lines(access_lines)
    assert line["request_id"] == "csrf-probe" and line["status"] == 400 and line["route"] == "/login"


def test_a_repeated_request_id_never_merges_ledger_records(
    client: Any, store: Store, org: dict[str, Any], access_lines: io.StringIO
) -> None:
    """Records (and their voids) are keyed by the request id: a caller's id may repeat, so records
    always get one of ours; the access line names it."""
    url = f"/v1/orgs/{org['oid']}/members"
    for _ in range(2):
        assert client.get(url, headers={**bearer(org["token"]), "X-Request-Id": "same"}).status_code == 200
    records = journal_records(store, org["client_id"])
    assert len(records) == 4
    ids = {r["request_id"] for r in records}
    assert len(ids) == 2 and "same" not in ids
    assert {line["record_request_id"] for line in lines(access_lines)} == ids
    assert len({r["id"] for r in records}) == 4


def test_the_text_format_carries_the_request_fields() -> None:
    record = logging.LogRecord("broker.access", logging.INFO, __file__, 1, "GET %s 200", ("/x",), None)
    record.fields = {"route": "/x", "status": 200}
    line = TextFormatter().format(record)
    assert line.endswith("INFO broker.access: GET /x 200 [route=/x status=200]")


def test_the_log_format_setting(tmp_path: Path) -> None:
    base = {"BROKER_DATA_DIR": str(tmp_path / "data")}
    assert Settings.from_env(base).log_format == "text"  # auto, in development
    assert Settings.from_env({**base, "BROKER_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError, match="BROKER_LOG_FORMAT: expected one of auto, json, text"):
        Settings.from_env({**base, "BROKER_LOG_FORMAT": "yaml"})


def _import_file(tmp_path: Path, n: int) -> Path:
    oid = f"org_000000000000000{n}"
    records: list[dict[str, Any]] = [{"type": "org", "id": oid, "name": "Initech"}]
    records += [{"type": "user", "username": f"p{n}x{i}"} for i in range(30)]
    path = tmp_path / f"dir{n}.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_progress_is_drawn_on_a_terminal_only(tmp_path: Path, redis_server: Any, store: Store) -> None:
    env = broker_env(tmp_path, BROKER_REDIS_URL=redis_server.url)
    command = [sys.executable, "-m", "broker", "directory", "import", str(_import_file(tmp_path, 1))]
    piped = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "imported 30 users" in piped.stdout
    assert "\r" not in piped.stderr and "[#" not in piped.stderr

    command[-1] = str(_import_file(tmp_path, 2))
    leader, follower = pty.openpty()
    try:
        on_terminal = subprocess.run(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=follower, timeout=120
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert on_terminal.returncode == 0, drawn
    assert b"\rwriting   [" in drawn and b"] 31/31" in drawn
