"""Key material kept in a JSON file outside Redis (``{"keys": [...]}``), shared by the signing keys
(:mod:`broker.core.keyring`) and the sealing keys (:mod:`broker.core.sealing`).

One object per file and process (:meth:`KeysFile.shared`); it reads the file again whenever its
mtime changes, so a key added by ``broker keys ...`` beside running servers is picked up. Writes are
atomic (a temporary file renamed over the old one, mode 0600). A missing file is created with first
keys only if it is still absent when the new one is linked into place: several processes may start
at once, and a key replaced after it signed or sealed something would lose what it made.
"""

from __future__ import annotations

import binascii
import json
import os
import threading
from pathlib import Path
from typing import Any, ClassVar, TypeVar

_Self = TypeVar("_Self", bound="KeysFile")

_SHARED: dict[tuple[type, str, bool], KeysFile] = {}
_SHARED_LOCK = threading.Lock()


class KeysFile:
    """A keys file and its entries. Subclasses name the file, the error, the first keys and what
    each read derives from the entries (:meth:`_load`)."""

    error: ClassVar[type[Exception]] = ValueError
    what: ClassVar[str] = "keys file"  # "signing keys file", "sealing keys file"
    invalid: ClassVar[str] = "is not valid"  # what a file that does not parse is said to be
    create_with: ClassVar[str] = "`broker keys init`"

    @classmethod
    def shared(cls: type[_Self], path: Path, *, create: bool = True) -> _Self:
        """One object per keys file in this process (it re-reads the file when it changes)."""
        key = (cls, str(Path(path).resolve()), create)
        with _SHARED_LOCK:
            found = _SHARED.get(key)
            if found is None:
                found = _SHARED[key] = cls(path, create=create)
            return found  # type: ignore[return-value]

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime = -1.0
        self._entries: list[dict[str, Any]] = []
        if not self.path.exists():
            if not create:
                raise self.error(f"{self.what} not found: {self.path} (create it with {self.create_with})")
            self._create(self._first_entries())
        self._reload()

    # -- what subclasses say ------------------------------------------------------------------------

    def _first_entries(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _load(self, entries: list[dict[str, Any]]) -> None:
        """Check and derive what the entries give (raise ValueError, KeyError or TypeError if they
        are not valid); called under the lock before the entries are kept."""

    # -- reading ------------------------------------------------------------------------------------

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            raise self.error(f"{self.what} unreadable: {self.path} ({exc.strerror})") from None
        if mtime == self._mtime:
            return
        with self._lock:
            try:
                entries = list(json.loads(self.path.read_text())["keys"])
                self._load(entries)
            except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise self.error(f"{self.what} {self.invalid}: {self.path} ({exc})") from None
            self._entries = entries
            self._mtime = mtime

    # -- writing ------------------------------------------------------------------------------------

    def _write(self, entries: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"keys": entries}, fh, indent=2)
        os.replace(tmp, self.path)
        self._mtime = -1.0

    def _create(self, entries: list[dict[str, Any]]) -> None:
        """Write first keys unless another process got there first (then use theirs)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.{threading.get_ident()}.new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"keys": entries}, fh, indent=2)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
