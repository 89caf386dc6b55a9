"""Count round trips to Redis: every write a redis-py connection sends is one, and the command
names in it are read back from the wire (RESP arrays of bulk strings, as redis-py packs them).

Deterministic, unlike timing: ``with round_trips() as trips: ...`` leaves one list of command names
per write in ``trips`` (``SCRIPT``, ``CLIENT``, ``CONFIG`` and ``CLUSTER`` with their subcommand).
Used by tests/test_round_trips.py and benchmarks/gate_bench.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from redis.connection import AbstractConnection

SUBCOMMANDS = {b"SCRIPT", b"CLIENT", b"CONFIG", b"CLUSTER"}


def _command_names(packed: bytes) -> list[str]:
    """The command names in a RESP-packed write (arrays of bulk strings, as redis-py sends them)."""
    names: list[str] = []
    at = 0
    while at < len(packed):
        assert packed[at : at + 1] == b"*", packed[at : at + 20]
        end = packed.index(b"\r\n", at)
        count = int(packed[at + 1 : end])
        at = end + 2
        parts: list[bytes] = []
        for _ in range(count):
            end = packed.index(b"\r\n", at)
            length = int(packed[at + 1 : end])
            parts.append(packed[end + 2 : end + 2 + length])
            at = end + 2 + length + 2
        name = parts[0].upper()
        if name in SUBCOMMANDS and len(parts) > 1:
            name += b" " + parts[1].upper()
        names.append(name.decode())
    return names


@contextlib.contextmanager
def round_trips() -> Iterator[list[list[str]]]:
    """Each write to any Redis connection while inside: the command names it carried."""
    trips: list[list[str]] = []
    original = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        chunks = [command] if isinstance(command, (bytes, str)) else command
        packed = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        trips.append(_command_names(packed))
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield trips
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
