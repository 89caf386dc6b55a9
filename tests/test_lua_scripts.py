"""The Lua scripts live in broker/storage/lua/*.lua (DESIGN house style, invariant 6).

Each file names its KEYS and ARGV in a header; a script that builds a key itself says so there;
no Python module carries Lua; the loader finds, resolves and registers every script.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from broker.storage import lua
from broker.storage.store import Store
from tests.support.environment import ROOT

LUA_DIR = ROOT / "broker" / "storage" / "lua"
FILES = sorted(LUA_DIR.glob("*.lua"))
# A redis.call whose key argument is not KEYS[n]: the script derives that key itself.
DERIVED = re.compile(r"redis\.call\(\s*'[A-Za-z]+'\s*,(?!\s*KEYS\[)")


def header(path: Path) -> list[str]:
    """The leading comment block."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return lines


def test_there_are_scripts_and_the_loader_lists_every_one() -> None:
    scripts = [p.stem for p in FILES if not p.stem.startswith("_")]
    assert len(scripts) >= 15
    assert list(lua.names()) == scripts


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_file_starts_with_a_header_naming_its_keys_and_argv(path: Path) -> None:
    lines = header(path)
    assert lines and lines[0].startswith(f"-- {path.name}: "), "the header names the file and its purpose"
    assert any(re.match(r"-- KEYS\b", line) for line in lines), f"{path.name}: no KEYS line in the header"
    assert any(re.match(r"-- ARGV\b", line) for line in lines), f"{path.name}: no ARGV line in the header"


@pytest.mark.parametrize("name", lua.names())
def test_a_script_that_derives_keys_says_they_carry_the_hash_tag_of_keys_1(name: str) -> None:
    text = "\n".join(header(LUA_DIR / f"{name}.lua"))
    if DERIVED.search(lua.source(name)):
        assert "Derived keys" in text and "hash tag of KEYS[1]" in text, name
    else:
        assert "Derived keys" not in text, f"{name}: passes every key in KEYS; the header says otherwise"


def test_includes_are_resolved_and_every_fragment_is_used() -> None:
    fragments = {p.stem[1:] for p in FILES if p.stem.startswith("_")}
    used = set()
    for name in lua.names():
        raw = (LUA_DIR / f"{name}.lua").read_text()
        used |= set(re.findall(r"^-- include: (\S+)$", raw, re.MULTILINE))
        assert not re.search(r"^-- include:", lua.source(name), re.MULTILINE), name
    assert used == fragments
    assert "local function token_is_valid" in lua.source("gate_disclose")
    assert "local function token_is_valid" in lua.source("token_lookup")


def test_no_python_module_in_broker_carries_lua() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "broker").rglob("*.py") if "redis.call(" in p.read_text()
    ]
    assert offenders == []


def test_every_script_is_used_by_the_code() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "broker").rglob("*.py"))
    unused = [n for n in lua.names() if f'lua("{n}")' not in code and f'source("{n}")' not in code]
    assert unused == []


@pytest.mark.parametrize("name", ["nope", "../store", "_validity", "token_lookup.lua", ""])
def test_an_unknown_name_or_a_fragment_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        lua.source(name)


def test_every_script_is_loaded_once_and_registered(store: Store) -> None:
    scripts = store.load_scripts()
    assert sorted(scripts) == sorted(lua.names())
    for name, script in scripts.items():
        assert store.lua(name) is script  # registered once per process
        assert script.sha == hashlib.sha1(lua.source(name).encode()).hexdigest()
    assert store.redis.script_exists(*(s.sha for s in scripts.values())) == [True] * len(scripts)
