"""``broker directory import FILE``: progress, summary, line-numbered errors, all or nothing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from broker.cli import main
from broker.directory import service as directory


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_server, store) -> None:
    for name in [k for k in os.environ if k.startswith("BROKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BROKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BROKER_REDIS_URL", redis_server.url)


def write(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_import_shows_progress_and_summary(cli_env, tmp_path: Path, store, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress is drawn on a terminal only
    oid = "org_0000000000000001"
    users = [{"type": "user", "username": f"member{i}"} for i in range(40)]
    members = [
        {"type": "membership", "org_id": oid, "username": f"member{i}", "role": "member"} for i in range(40)
    ]
    path = write(tmp_path / "dir.ndjson", {"type": "org", "id": oid, "name": "Initech"}, *users, *members)
    assert main(["directory", "import", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"imported 40 users, 1 organizations, 40 memberships, 0 departments from {path}"
    assert "\rwriting   [" in err and "] 81/81\n" in err
    page, _ = directory.list_members(store, oid, None, 100)
    assert len(page) == 40


def test_import_refuses_bad_lines_and_writes_nothing(cli_env, tmp_path: Path, store, capsys) -> None:
    path = write(
        tmp_path / "bad.ndjson",
        {"type": "user", "username": "ok-user"},
        "not json",
        {"type": "user", "username": "x", "colour": "blue"},
    )
    assert main(["directory", "import", str(path)]) == 1
    _, err = capsys.readouterr()
    assert "line 2: _line: not valid JSON" in err
    assert "line 3: colour: Unknown field." in err
    assert "line 3: username:" in err
    assert err.strip().endswith("2 invalid line(s); nothing was imported")
    assert list(store.redis.scan_iter()) == ["b:schema"]  # only the data-schema version stamp


def test_missing_file_is_a_usage_error(cli_env, tmp_path: Path, capsys) -> None:
    assert main(["directory", "import", str(tmp_path / "nope.ndjson")]) == 2
    assert "cannot read" in capsys.readouterr().err
