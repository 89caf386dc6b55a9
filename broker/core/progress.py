"""Progress on stderr for long-running commands (import, ledger verify, export, prune).

stdout stays clean for data (an export pipes its records there); stderr shows where the work is and
the summary line comes last. Looked up when a bar starts, never at import time (tests swap streams).

Bars and running counts are drawn only when the stream is a terminal: redrawn with ``\r`` into a
log file or a pipe they are noise. The summary line of :class:`Tally` is written either way.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """A plain-text bar redrawn in place: ``label [#####.....] 500/1000``; a newline when done."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last = -1
        self.enabled = is_terminal(self.stream)

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        filled = self.width * done // total if total else self.width
        if filled == self._last and done != total:
            return
        self._last = filled
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label:<9} [{bar}] {done}/{total}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


class Tally:
    """Progress when the total is not known in advance: ``label 12000`` redrawn every ``every`` items."""

    def __init__(self, label: str, stream: TextIO | None = None, every: int = 1000) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.count = 0
        self.started = time.monotonic()
        self.enabled = is_terminal(self.stream)

    def step(self) -> None:
        self.count += 1
        if self.enabled and self.count % self.every == 0:
            self.stream.write(f"\r{self.label} {self.count}")
            self.stream.flush()

    def finish(self, summary: str) -> None:
        """Replace the running count with the summary line (and the time taken)."""
        if self.enabled and self.count >= self.every:
            self.stream.write("\r")
        self.stream.write(f"{summary} in {time.monotonic() - self.started:.1f} s\n")
        self.stream.flush()
