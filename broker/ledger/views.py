"""Reader views of the ledger: packed strings, a few bytes per record per view.

A log has four kinds of view, each one string key of fixed-width entries written by the log's
sequencer in leaf order (``keys.ledger_view``; the string grows an eighth ahead in zero bytes, and
the first zero entry ends the view):

* ``person=<uid>``: every record about that person (20 bytes an entry: the leaf index, the ledger
  time, and 4-byte codes of the record's app and organization, so that a person's records can be
  filtered by app or organization inside Redis without reading a body);
* ``org=<oid>``: the records made through the organization's installations (16 bytes: the index,
  the ledger time and the app's code, so that an organization's records can be filtered by app the
  same way);
* ``app=<client_id>`` (12 bytes: the index and the ledger time).

Every other filter (an app's records about one person, an organization's about one member, an
organization's of one app, ...) reads the person's view, which lives in the person's one log, or
the organization's, filtered by those codes. A code is
the first 4 bytes of the SHA-1 of the id: two ids may share one (about one pair in 4 billion), so a
reader also checks each record it returns (``reading``).

**Ledger time.** Records reach a log in the order the sequencer reads them, which is not exactly the
order of their own times. Each leaf gets a ledger time, the later of its record's time and the ledger
time of the leaf before it (``keys.ledger_clock`` holds the newest), so that every view is in
ledger-time order and one binary search finds where a time range or a cursor starts
(``ledger_view.lua``). Filters and pages use the ledger time; pruning removes the records whose
ledger time is before the cutoff (a prefix of every view, cut off by ``ledger_view_cut.lua``).

Compared with a sorted-set entry per record per view (about 105 bytes each once a set is large, and
seven views for a record made through an installation), a record costs 32 bytes in views (48 for one
made through an installation), whatever the sizes.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from broker.storage import keys

ENTRY = struct.Struct(">Id")  # leaf index, ledger time
ORG_ENTRY = struct.Struct(">Id4s")  # leaf index, ledger time, app code
PERSON_ENTRY = struct.Struct(">Id4s4s")  # leaf index, ledger time, app code, organization code
WIDTH = ENTRY.size
ORG_WIDTH = ORG_ENTRY.size
PERSON_WIDTH = PERSON_ENTRY.size
NO_ORG = bytes(4)
MAX_INDEX = 2**32 - 1  # a log holds at most this many leaves (the index is 4 bytes)


MIN_TIME = 1.0  # a ledger time is never below this: a zero entry marks the end of a view's entries


def ledger_time(clock: float, record_time: Any) -> float:
    """The ledger time of the next leaf: the later of its record's time and the log's clock."""
    return max(clock, float(record_time), MIN_TIME)


def code(value: str) -> bytes:
    """The 4-byte code of an app or organization id in a person's view."""
    return hashlib.sha1(value.encode(), usedforsecurity=False).digest()[:4]


def org_of(record: dict[str, Any]) -> str | None:
    """The organization a record was made for (an installation's), else None."""
    org = record.get("org")
    if record.get("audience") == "organization" and isinstance(org, str) and org:
        return org
    return None


def entries(record: dict[str, Any], log: str, index: int, at: float) -> list[tuple[str, bytes]]:
    """What the sequencer appends for the record at ``index`` with ledger time ``at``: (view key,
    entry) for each view the record is in."""
    person, app, org = str(record["person"]), str(record["app"]), org_of(record)
    short = ENTRY.pack(index, at)
    personal = PERSON_ENTRY.pack(index, at, code(app), code(org) if org else NO_ORG)
    found = [(keys.ledger_view(log, person=person), personal), (keys.ledger_view(log, app=app), short)]
    if org:
        found.append((keys.ledger_view(log, org=org), ORG_ENTRY.pack(index, at, code(app))))
    return found


def width(key: str) -> int:
    """The entry width of a view key."""
    if ":v:person=" in key:
        return PERSON_WIDTH
    return ORG_WIDTH if ":v:org=" in key else WIDTH


def unpack(raw: bytes, entry_width: int) -> list[tuple[int, float]]:
    """A view's (index, ledger time) entries, in order, up to its end (a zero entry: the sequencer
    grows a view's string ahead of its entries)."""
    found = []
    for p in range(0, len(raw) - entry_width + 1, entry_width):
        index, at = ENTRY.unpack_from(raw, p)
        if at <= 0:
            break
        found.append((index, at))
    return found


def read(store: Any, key: str) -> list[tuple[int, float]]:
    """Every entry of one view (for verification and tests; readers page with ``ledger_view.lua``)."""
    raw = store.redis.execute_command("GET", key, NEVER_DECODE=True)
    return unpack(raw or b"", width(key))
