"""How one log lives in Redis, all under that log's hash tag ``{ledger:NN}`` (DESIGN invariant 6;
``broker.ledger.logs`` says how records are spread over the logs).

* ``ledger_bodies(block)`` lists: the bodies of :data:`BODY_BLOCK` consecutive leaves, leaf ``i`` at
  position ``i % BODY_BLOCK`` of list ``i // BODY_BLOCK`` (a list keeps its elements packed: about 4
  bytes each beyond the body, where a hash field costs about 75). A body is the record's canonical
  JSON (exactly the leaf data) packed by :func:`pack_body` (``broker.ledger.bodies``: the record's
  fields in a compact binary form, about 80 bytes for a 360-420 byte record, when it gives the JSON
  back exactly; else DEFLATE with a preset dictionary, about 130, or the JSON if shorter).
  :func:`unpack_body` gives back the exact canonical bytes, so leaf hashes, proofs and verification
  are unchanged. A pruned leaf's element is empty, and a block whose every leaf was pruned is
  deleted.
* ``ledger_ids(block)`` hashes: record id -> index for :data:`ID_BLOCK` consecutive leaves (few enough
  entries for Redis's compact listpack encoding: about 25 bytes a record, where one hash per log
  costs about 90). The sequencer finds a record id it may have appended already in the blocks of
  the last :data:`RECENT_LEAVES` leaves; a pruned record's entry goes with its body (``broker ledger
  prune`` leaves alone records as recent as one still waiting in a journal). ``ledger_id_times``
  keeps each block's newest ledger time (4 bytes a block): a record of time t that is in the log is
  at a leaf of ledger time >= t (leaf ledger times never go down), so only the blocks whose newest
  time is >= t can hold its id, and for records that just arrived those are the last one or two.
* ``ledger_hashes(level)`` strings: the Merkle tree's complete aligned subtree hashes, 32 raw bytes
  each, the one starting at leaf ``i * 2**level`` at byte ``32 * i``. Only the leaves (level 0) and
  the levels from :data:`DERIVED_BELOW` up are stored: a hash of levels 1 .. ``DERIVED_BELOW - 1``
  is computed from the at most 8 leaf hashes beneath it when a proof or a root needs it (one read
  of 512 bytes and at most 15 SHA-256 per proof). That keeps 36 bytes of hashes per leaf where
  every level would keep 64, which is what a pruned record costs, while every leaf hash stays: a
  pruned record's inclusion and any consistency proof can still be made.
* ``ledger_size``, ``ledger_pruned_bits`` (bit i set: leaf i's body was pruned),
  ``ledger_checkpoints``, ``ledger_clock`` and the reader views (``ledger_view(**dims)``,
  ``broker.ledger.views``).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from typing import Any

from broker.ledger import bodies, merkle
from broker.storage import keys
from broker.storage.store import Store

INDEX_WIDTH = 12  # a leaf index in a cursor: zero-padded to 12 digits
HASH_BYTES = 32
_MISSING = bytes(HASH_BYTES)


class LedgerCorrupt(Exception):
    """A stored subtree hash the log needs is missing or malformed, or a stored body is unreadable."""


# -- record bodies ------------------------------------------------------------------------------

PACKED = (bodies.DEFLATED, bodies.FIELDS)  # first bytes of the packed forms (a plain body: "{")


def pack_body(body: bytes) -> bytes:
    """What a body list stores for the canonical JSON ``body`` (``broker.ledger.bodies``)."""
    return bodies.pack(body)


def unpack_body(raw: bytes) -> bytes:
    """The canonical JSON of a stored body; LedgerCorrupt if it is in no known form (changed)."""
    try:
        return bodies.unpack(raw)
    except bodies.Unreadable as exc:
        raise LedgerCorrupt(f"a stored record body is unreadable: {exc}") from None


ID_BLOCK = 128  # leaves per id map: at most 128 fields keeps a Redis hash in its compact encoding
# How far back (leaves) the sequencer looks for an id it may have appended before a crash, and a
# void's settling for the records of a refused request (both are recent by then).
RECENT_LEAVES = 8192
VOID_LEAVES = 65536


def id_blocks(size: int, leaves: int) -> list[int]:
    """The id maps of the last ``leaves`` leaves of a log of ``size`` leaves."""
    if size <= 0:
        return []
    return list(range(max(0, size - leaves) // ID_BLOCK, (size - 1) // ID_BLOCK + 1))


ID_TIME_BYTES = 4


def id_time_write(block: int, ledger_time: float) -> tuple[str, int, bytes]:
    """What ``ledger_append.lua`` writes for a block's newest ledger time: (SETRANGE, offset, bytes)."""
    seconds = min(max(1, math.ceil(ledger_time)), 2**32 - 1) if math.isfinite(ledger_time) else 2**32 - 1
    return "SETRANGE", block * ID_TIME_BYTES, struct.pack(">I", seconds)


def block_times(store: Store, log: str, blocks: list[int]) -> dict[int, int]:
    """Each block's newest ledger time in whole seconds, rounded up (0: unknown), in one read."""
    if not blocks:
        return {}
    first, last = min(blocks), max(blocks)
    raw = store.redis.execute_command(
        "GETRANGE",
        keys.ledger_id_times(log),
        first * ID_TIME_BYTES,
        (last + 1) * ID_TIME_BYTES - 1,
        NEVER_DECODE=True,
    )
    data = (raw or b"").ljust((last - first + 1) * ID_TIME_BYTES, b"\0")
    return {b: struct.unpack_from(">I", data, (b - first) * ID_TIME_BYTES)[0] for b in blocks}


def find_ids(
    store: Store, log: str, ids: list[str], blocks: list[int], times: Sequence[float] | None = None
) -> list[int | None]:
    """The leaf index of each record id in the given id maps (None: not there).

    With ``times`` (each record's own time), an id is looked for only in the blocks whose newest
    ledger time is at least its record's (or is unknown): one read of the blocks' times, then one
    HMGET per block for just the ids it may hold. Without, every id in every block (one round trip).
    """
    if not ids or not blocks:
        return [None] * len(ids)
    newest = block_times(store, log, blocks) if times is not None else {}
    pipe = store.redis.pipeline(transaction=False)
    asked: list[list[int]] = []
    for block in blocks:
        limit = newest.get(block, 0)
        wanted = (
            list(range(len(ids)))
            if times is None or limit == 0
            else [n for n, t in enumerate(times) if limit >= t]
        )
        if wanted:
            pipe.hmget(keys.ledger_ids(log, block), [ids[n] for n in wanted])
            asked.append(wanted)
    found: list[int | None] = [None] * len(ids)
    for wanted, answer in zip(asked, pipe.execute() if asked else [], strict=True):
        for n, value in zip(wanted, answer, strict=True):
            if value is not None:
                found[n] = int(value)
    return found


# How far out of order (and apart on the gate processes' clocks) records may reach one journal.
JOURNAL_DISORDER_SECONDS = 60.0


def waiting_since(store: Store, log: str) -> float | None:
    """The time of the oldest record still waiting in this log's journals, less
    :data:`JOURNAL_DISORDER_SECONDS` (None: no journal holds anything).

    A record a sequencer appended and then crashed before deleting from its journal waits there a
    second time, and the sequencer knows it by its id in the log's id map. Records older than this
    are not waiting anywhere (and a record that arrives later is a new one), so their bodies and id
    entries can both go."""
    r = store.redis
    clients = sorted(r.smembers(keys.journals_index(log)))
    pipe = r.pipeline(transaction=False)
    for client_id in clients:
        pipe.xrange(keys.journal(client_id, log), "-", "+", count=1)
    oldest: float | None = None
    for batch in pipe.execute() if clients else []:
        if not batch:
            continue
        entry_id, fields = batch[0]
        try:
            at = float(json.loads(fields.get("r", ""))["time"])
        except (ValueError, TypeError, KeyError):
            at = int(str(entry_id).partition("-")[0]) / 1000  # the gate's Redis clock
        oldest = at if oldest is None else min(oldest, at)
    return None if oldest is None else oldest - JOURNAL_DISORDER_SECONDS


BODY_BLOCK = 1024  # leaves per body list (a multiple of 8: a block's pruned bits are whole bytes)


def body_at(index: int) -> tuple[int, int]:
    """(block, position in the block) of leaf ``index``'s body."""
    return divmod(index, BODY_BLOCK)


def _text(raw: bytes | None) -> str | None:
    return None if not raw else unpack_body(raw).decode()


def _raw(store: Store, wanted: list[tuple[str, int]]) -> list[bytes | None]:
    if not wanted:
        return []
    pipe = store.redis.pipeline(transaction=False)
    for log, index in wanted:
        block, position = body_at(index)
        pipe.execute_command("LINDEX", keys.ledger_bodies(log, block), position, NEVER_DECODE=True)
    return list(pipe.execute())


def read_bodies_of(store: Store, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], str | None]:
    """The canonical JSON of the records at (log, index) in ``wanted`` (None: pruned or absent), in
    one round trip; LedgerCorrupt if one cannot be read."""
    return {at: _text(raw) for at, raw in zip(wanted, _raw(store, wanted), strict=True)}


def read_raw_bodies(store: Store, log: str, indexes: list[int]) -> list[bytes | None]:
    """The stored bodies at ``indexes`` as they are (empty or None: pruned or absent)."""
    return _raw(store, [(log, i) for i in indexes])


def read_bodies(store: Store, log: str, indexes: list[int]) -> list[str | None]:
    """The canonical JSON of the records at ``indexes`` of one log (None: pruned or absent)."""
    found = read_bodies_of(store, [(log, i) for i in indexes])
    return [found[(log, i)] for i in indexes]


def raw_block(store: Store, log: str, block: int) -> list[bytes]:
    """Every stored element of one body list, as stored (for verification and migrations)."""
    key = keys.ledger_bodies(log, block)
    return list(store.redis.execute_command("LRANGE", key, 0, -1, NEVER_DECODE=True))


def drop_body(pipe: Any, log: str, index: int) -> None:
    """Queue the removal of leaf ``index``'s body (pruning): its element becomes empty."""
    block, position = body_at(index)
    pipe.execute_command("LSET", keys.ledger_bodies(log, block), position, b"")


def drop_block_if_pruned(store: Store, log: str, block: int) -> bool:
    """Delete a body list whose every leaf was pruned (its bits are one whole run of bytes)."""
    first = block * BODY_BLOCK // 8
    pruned = int(store.redis.bitcount(keys.ledger_pruned_bits(log), first, first + BODY_BLOCK // 8 - 1))
    if pruned < BODY_BLOCK:
        return False
    store.redis.delete(keys.ledger_bodies(log, block))
    return True


canonical = bodies.canonical  # the leaf data: sorted keys, no spaces, UTF-8


def member(index: int) -> str:
    return str(index).zfill(INDEX_WIDTH)


def queue_hashes(pipe: Any, log: str, level: int, start: int, stop: int) -> None:
    """Queue the read of the level-``level`` hashes ``start`` .. ``stop - 1`` (one GETRANGE, raw bytes)."""
    pipe.execute_command(
        "GETRANGE",
        keys.ledger_hashes(level, log),
        start * HASH_BYTES,
        stop * HASH_BYTES - 1,
        NEVER_DECODE=True,
    )


def split_hashes(raw: bytes | None, count: int) -> list[bytes | None]:
    """The hashes of one :func:`queue_hashes` reply; a missing one (never written) is None."""
    data = raw or b""
    out: list[bytes | None] = []
    for i in range(count):
        value = data[i * HASH_BYTES : (i + 1) * HASH_BYTES]
        out.append(value if len(value) == HASH_BYTES and value != _MISSING else None)
    return out


def read_hashes(store: Store, log: str, level: int, start: int, stop: int) -> list[bytes | None]:
    """The level-``level`` hashes ``start`` .. ``stop - 1`` in one round trip (None: missing)."""
    if stop <= start:
        return []
    pipe = store.redis.pipeline(transaction=False)
    queue_hashes(pipe, log, level, start, stop)
    return split_hashes(pipe.execute()[0], stop - start)


DERIVED_BELOW = 4  # levels 1 .. 3 are computed from the leaf hashes, not stored


def stored_level(level: int) -> bool:
    """Whether the hashes of ``level`` are stored (the leaves, and every level from DERIVED_BELOW)."""
    return level == 0 or level >= DERIVED_BELOW


def hash_write(index: int, value: bytes) -> tuple[str, int, bytes]:
    """What ``ledger_append.lua`` writes for one subtree hash: (SETRANGE, byte offset, bytes)."""
    return "SETRANGE", index * HASH_BYTES, value


def pruned_flags(store: Store, log: str, start: int, stop: int) -> list[bool]:
    """Whether the bodies of leaves ``start`` .. ``stop - 1`` were pruned (one GETRANGE of the bitmap)."""
    if stop <= start:
        return []
    raw = store.redis.execute_command(
        "GETRANGE", keys.ledger_pruned_bits(log), start // 8, (stop - 1) // 8, NEVER_DECODE=True
    )
    data = raw or b""
    out = []
    for i in range(start, stop):
        byte = (i // 8) - (start // 8)
        out.append(byte < len(data) and bool(data[byte] & (0x80 >> (i % 8))))
    return out


def size(store: Store, log: str) -> int:
    return int(store.redis.get(keys.ledger_size(log)) or 0)


def sizes(store: Store, logs: list[str]) -> dict[str, int]:
    """The tree size of each log, in one round trip."""
    pipe = store.redis.pipeline(transaction=False)
    for log in logs:
        pipe.get(keys.ledger_size(log))
    return {log: int(n or 0) for log, n in zip(logs, pipe.execute() if logs else [], strict=True)}


class RedisTree:
    """A ``merkle.TreeView`` over the stored subtree hashes, with a per-instance cache; the hashes
    of the levels that are not stored are computed from the leaf hashes beneath them."""

    def __init__(self, store: Store, log: str) -> None:
        self.store = store
        self.log = log
        self._cache: dict[tuple[int, int], bytes] = {}

    def subtree(self, level: int, index: int) -> bytes:
        found = self._cache.get((level, index))
        if found is not None:
            return found
        if not stored_level(level):
            self.prefetch({(level, index)})
            half = index << 1
            found = merkle.node_hash(self.subtree(level - 1, half), self.subtree(level - 1, half + 1))
        else:
            found = read_hashes(self.store, self.log, level, index, index + 1)[0]
            if found is None:
                raise LedgerCorrupt(f"subtree hash level {level} index {index} is missing or malformed")
        self._cache[(level, index)] = found
        return found

    def prefetch(self, wanted: set[tuple[int, int]]) -> None:
        """Fetch many subtree hashes in one round trip: one GETRANGE per run of neighbouring hashes of
        a level (a hash that is not stored needs the leaves beneath it)."""
        needed: set[tuple[int, int]] = set()
        for level, index in wanted:
            if (level, index) in self._cache:
                continue
            if stored_level(level):
                needed.add((level, index))
            else:
                needed.update((0, leaf) for leaf in range(index << level, (index + 1) << level))
        runs: list[tuple[int, int, int]] = []  # (level, first index, stop)
        for level, index in sorted(w for w in needed if w not in self._cache):
            if runs and runs[-1][0] == level and runs[-1][2] == index:
                runs[-1] = (level, runs[-1][1], index + 1)
            else:
                runs.append((level, index, index + 1))
        if not runs:
            return
        pipe = self.store.redis.pipeline(transaction=False)
        for level, start, stop in runs:
            queue_hashes(pipe, self.log, level, start, stop)
        for (level, start, stop), raw in zip(runs, pipe.execute(), strict=True):
            for index, value in enumerate(split_hashes(raw, stop - start), start):
                if value is not None:  # subtree() raises LedgerCorrupt with the details when needed
                    self._cache[(level, index)] = value

    def prefetch_proofs(self, indexes: list[int], tree_size: int) -> None:
        """Load everything the inclusion proofs of ``indexes`` need, in one round trip."""
        recorder = _Recorder()
        for index in indexes:
            if 0 <= index < tree_size:
                merkle.inclusion_proof(recorder, index, tree_size)
                recorder.subtree(0, index)
        self.prefetch(recorder.wanted)

    def root(self, tree_size: int) -> bytes:
        recorder = _Recorder()
        merkle.root(recorder, tree_size)
        self.prefetch(recorder.wanted)
        return merkle.root(self, tree_size)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        self.prefetch_proofs([index], tree_size)
        return merkle.inclusion_proof(self, index, tree_size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        recorder = _Recorder()
        merkle.consistency_proof(recorder, first, second)
        self.prefetch(recorder.wanted)
        return merkle.consistency_proof(self, first, second)

    def leaf(self, index: int) -> bytes:
        return self.subtree(0, index)


class _Recorder:
    """A TreeView that only notes which subtrees a computation reads (to prefetch them)."""

    def __init__(self) -> None:
        self.wanted: set[tuple[int, int]] = set()

    def subtree(self, level: int, index: int) -> bytes:
        self.wanted.add((level, index))
        return bytes(32)


def frontier(store: Store, log: str, tree_size: int) -> dict[int, bytes]:
    """The right edge needed to append: for every set bit L of ``tree_size``, the last level-L hash."""
    tree = RedisTree(store, log)
    wanted = {
        (level, (tree_size >> level) - 1)
        for level in range(tree_size.bit_length())
        if (tree_size >> level) & 1
    }
    tree.prefetch(wanted)
    return {level: tree.subtree(level, index) for level, index in wanted}
