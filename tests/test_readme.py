"""The README's configuration table is generated from broker.config.OPTIONS and must match it."""

from __future__ import annotations

import subprocess
import sys

from broker.config import OPTIONS
from tests.conftest import ROOT


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
    tests = (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest -n 2"
    )
    assert readme.index(demo) < readme.index(tests) < readme.index("## Configuration")
    assert tests in (ROOT / ".ci" / "run").read_text()
