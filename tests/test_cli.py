"""The ``broker`` command itself, through the real CLI: version, help, and the exit codes and
messages of usage errors, configuration errors and failures the user can fix (0 ok, 1 a problem
found, 2 bad usage or configuration, 130 interrupted)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import broker as broker_package
from broker import cli
from tests.support.environment import ROOT, broker_env


def broker(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        env=broker_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_is_the_installed_package_version(tmp_path: Path) -> None:
    from broker.migrations import SCHEMA_VERSION
    from tests.support.redis_servers import server_binary  # the engine this run uses

    result = broker(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    engine = subprocess.run([server_binary(), "--version"], capture_output=True, text=True).stdout
    name, _, rest = engine.partition(" server v=")
    assert result.stdout == (
        f"broker {version('broker')}\n"
        f"data-schema version {SCHEMA_VERSION}\n"
        f"embedded engine {name.lower()} {rest.split()[0]}\n"
    )
    assert version("broker") == broker_package.__version__
    assert result.stderr == ""


def test_help_lists_every_command_with_its_help(tmp_path: Path) -> None:
    result = broker(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: broker [OPTIONS] COMMAND [ARGS]...\n")
    listed = result.stdout.split("Commands:\n", 1)[1]
    names = [line.split()[0] for line in listed.splitlines() if line.startswith("  ") and line[2] != " "]
    assert names == [
        "serve", "scopes", "demo", "apps", "worker", "webhooks", "keys", "ledger", "directory",
        "migrate", "backup", "restore",
    ]  # fmt: skip
    assert names == list(cli.cli.commands)
    assert "  ledger     disclosure ledger tools\n" in listed
    assert "--version" in result.stdout


def test_usage_error_exits_2_with_the_usage_on_stderr(tmp_path: Path) -> None:
    result = broker(tmp_path, "ledger", "export", "--person", "usr_x", "--format", "xml")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Usage: broker ledger export [OPTIONS]\n")
    assert "Error: Invalid value for '--format': 'xml' is not one of 'ndjson', 'csv'." in result.stderr

    result = broker(tmp_path, "ledger", "export", "--person", "usr_x", "--app", "app_x")
    assert result.returncode == 2
    assert result.stderr.endswith("Error: argument --app: not allowed with argument --person\n")

    result = broker(tmp_path, "nope")
    assert (result.returncode, result.stdout) == (2, "")
    assert "Error: No such command 'nope'." in result.stderr


def test_a_command_without_its_subcommand_shows_its_help_and_exits_2(tmp_path: Path) -> None:
    result = broker(tmp_path, "ledger")
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: broker ledger [OPTIONS] COMMAND [ARGS]...\n")
    assert "  verify  recompute and check the whole ledger and its checkpoints\n" in result.stderr


def test_a_failure_the_user_can_fix_names_the_command_and_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ndjson"
    result = broker(tmp_path, "directory", "import", str(missing))
    assert result.returncode == 2
    assert result.stderr == f"broker directory: cannot read {missing}: No such file or directory\n"

    result = broker(tmp_path, "scopes", "check", BROKER_NO_SUCH_SETTING="1")
    assert result.returncode == 2
    assert result.stderr.startswith("broker scopes: ")
    assert "BROKER_NO_SUCH_SETTING" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_problem_found_exits_1(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = broker(tmp_path, "scopes", "check", str(tmp_path / "empty"))
    assert result.returncode == 1
    assert result.stderr.startswith("invalid scope catalog: ")

    result = broker(tmp_path, "scopes", "check", str(ROOT / "scopes"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("scope catalog OK: ")


def test_interrupted_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(directory: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("broker.core.catalog.load", interrupted)
    assert cli.main(["scopes", "check", str(ROOT / "scopes")]) == 130
    assert capsys.readouterr().out == ""
