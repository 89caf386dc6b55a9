"""The Lua scripts, one ``<name>.lua`` file each (package data), read once per process.

Every file starts with a header comment naming its ``KEYS`` and ``ARGV`` and, where a script builds
a key itself (from the app's tag after reading a token), says so: such derived keys always carry the
hash tag of ``KEYS[1]``, so the script stays in one cluster slot (DESIGN invariant 6).

Shared code lives in fragments, files whose name starts with ``_``: a line ``-- include: validity``
in a script is replaced by ``_validity.lua`` when the script is read. Fragments are not scripts
and include nothing themselves.

Run a script through :meth:`broker.storage.store.Store.lua` (registered once, EVALSHA);
:func:`source` is for the rare plain ``EVAL`` (queued inside a cluster MULTI).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_INCLUDE = re.compile(r"^-- include: (\S+)[ \t]*$", re.MULTILINE)


def _read(filename: str) -> str:
    return resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")


@cache
def names() -> tuple[str, ...]:
    """Every script (fragments left out), sorted."""
    found = (entry.name for entry in resources.files(__name__).iterdir())
    return tuple(sorted(n[: -len(".lua")] for n in found if n.endswith(".lua") and _NAME.fullmatch(n[:-4])))


@cache
def source(name: str) -> str:
    """The text of script ``name`` with its includes resolved; ValueError for an unknown name."""
    if name not in names():
        raise ValueError(f"no Lua script {name!r} in broker/storage/lua")

    def include(match: re.Match[str]) -> str:
        fragment = match.group(1)
        if not _NAME.fullmatch(fragment):
            raise ValueError(f"{name}.lua: bad include {fragment!r}")
        text = _read(f"_{fragment}.lua")
        if _INCLUDE.search(text):
            raise ValueError(f"_{fragment}.lua: a fragment includes nothing")
        return text.rstrip("\n")

    return _INCLUDE.sub(include, _read(f"{name}.lua"))
