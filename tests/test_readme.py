"""The README is the front door: its configuration table is generated from broker.config.OPTIONS,
and every section, path, link, command and page it names must exist."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from broker.config import OPTIONS
from tests.support.environment import ROOT

CLI_COMMANDS = {"serve", "demo", "worker", "webhooks", "scopes", "keys", "ledger", "directory", "apps"} | {
    "migrate",
    "backup",
    "restore",
}


def test_readme_config_table_matches_options() -> None:
    readme = (ROOT / "README.md").read_text()
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_table.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() in readme, "README is stale: run python scripts/config_table.py --write"
    for opt in OPTIONS:
        assert f"| `{opt.name}` |" in readme


def test_readme_keeps_the_two_commands_first() -> None:
    readme = (ROOT / "README.md").read_text()
    demo = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/broker demo"
    tests = "bash scripts/test"
    assert readme.index(demo) < readme.index(f"\n{tests}\n") < readme.index("## Configuration")
    assert f"exec {tests}" in (ROOT / ".ci" / "run").read_text()
    script = (ROOT / "scripts" / "test").read_text()
    assert "pip install -q -e '.[test]'" in script and "-m pytest -n 2" in script
    assert "apt-get install -y -qq chromium" in script


def test_test_script_says_how_to_get_chromium_when_it_cannot_install_it(tmp_path: Path) -> None:
    """On a machine without chromium and without apt, the README's test command stops at once with
    the way out, instead of running for minutes and failing every browser test."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "id"):  # all the script needs before it would install anything
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "test")],
        env={"PATH": str(bin_dir), "BROKER_TEST_CHROMIUM": str(tmp_path / "no-chromium")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "no chromium at" in result.stderr and "BROKER_TEST_CHROMIUM" in result.stderr


def readmes() -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(ROOT)), path.read_text())
        for path in (ROOT / "README.md", *sorted(ROOT.glob("examples/*/README.md")))
    ]


def test_readme_teaches_what_the_newcomer_needs() -> None:
    """Issue 6's README: quickstart, walk-through, concepts, architecture, configuration,
    operations (backups, keys, ledger verification, external Redis / Cluster), security model."""
    readme = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", readme, re.M)
    for wanted in (
        "Quickstart",
        "Walk-through",
        "Concepts",
        "Architecture",
        "Security model and invariants",
        "Operations",
        "Configuration",
    ):
        assert wanted in headings, f"README lacks the section {wanted!r}"
    operations = readme.split("## Operations", 1)[1].split("\n## ", 1)[0]
    for topic in (
        "broker backup",
        "broker restore",
        "broker keys rotate",
        "broker ledger verify",
        "BROKER_REDIS_CLUSTER",
    ):
        assert topic in readme, topic
    assert "use `broker backup FILE`" in operations


def test_every_path_and_link_the_readmes_name_exists() -> None:
    for name, text in readmes():
        base = (ROOT / name).parent
        links = re.findall(r"\]\(([^)#\s]+)\)", text)
        for link in links:
            if not link.startswith(("http://", "https://")):
                assert (base / link).exists(), f"{name} links to a missing {link}"
        for path in re.findall(r"`((?:examples|docs|tests|benchmarks|scripts|broker|scopes)/[\w./-]+)", text):
            assert (ROOT / path.rstrip(".")).exists(), f"{name} names a missing path {path}"


def refusal(argv: list[str]) -> str | None:
    """Why the CLI refuses ``broker ARGV`` (its usage error), or None if it would run it."""
    from broker import cli

    try:
        cli.resolve(argv)
    except click.UsageError as exc:
        return exc.format_message()
    except click.exceptions.Exit as exc:  # --help, --version: answered while parsing
        return None if exc.exit_code == 0 else f"exit {exc.exit_code}"
    return None


def test_the_command_check_refuses_what_the_cli_refuses() -> None:
    assert refusal(["ledger", "export", "--person", "x", "--format", "csv"]) is None
    assert refusal(["--version"]) is None
    for argv in (
        ["nope"],
        ["ledger"],
        ["ledger", "verify", "--bogus"],
        ["ledger", "verify", "extra"],
        ["ledger", "export"],
        ["ledger", "export", "--person", "x", "--org", "y"],
        ["apps", "suspend"],
        ["keys", "rotate", "--alg", "RS256"],
        ["serve", "--port", "eighty"],
    ):
        assert refusal(argv), argv


def test_every_broker_command_the_readmes_show_parses() -> None:
    """`broker ...` commands in the READMEs are real: the CLI's own parser accepts each one."""
    from broker import cli

    assert set(cli.cli.commands) == CLI_COMMANDS
    commands: list[list[str]] = []
    for _name, text in readmes():
        for match in re.finditer(r"(?:^|[\s`/])broker ((?:-{0,2}[a-z][\w-]*)(?: [^`\n|;&#]*)?)", text):
            words = shlex.split(match.group(1).strip().rstrip("`"))
            if not words or words[0] not in CLI_COMMANDS | {"--version", "--help"}:
                continue
            commands.append(words)
    assert len(commands) >= 10, commands  # the READMEs really show commands
    for words in commands:
        # placeholders such as CLIENT_ID, FILE, DAYS become a value; ES256 stays what it is
        argv = ["x" if re.fullmatch(r"[A-Z_]{3,}", w) else w for w in words]
        why = refusal(argv)
        assert why is None, f"the README shows `broker {' '.join(words)}`, which the CLI refuses: {why}"


def test_every_page_the_readme_tells_people_to_open_exists(app: Any) -> None:
    readme = (ROOT / "README.md").read_text()
    adapter = app.url_map.bind("127.0.0.1")
    paths = set(re.findall(r"\| `(/[^`\s]*)`", readme)) | set(
        re.findall(r"127\.0\.0\.1:8080(/[\w/.-]*)", readme)
    )
    assert {"/login", "/console", "/privacy", "/docs"} <= paths
    for path in paths:
        concrete = re.sub(r"<[^>]+>", "x", path)
        served = []
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            try:
                adapter.match(concrete, method=method)
            except RequestRedirect:
                served.append(method)  # a trailing-slash redirect is still the page
            except HTTPException:
                continue
            else:
                served.append(method)
        assert served, f"the README points at {path}, which no route serves"
