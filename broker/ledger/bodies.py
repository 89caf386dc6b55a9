"""How a record's body is stored: its canonical JSON (the leaf data), packed, and back exactly.

Three forms, told apart by the first byte:

* ``{``: the canonical JSON itself;
* ``0x01``: raw DEFLATE of the JSON with a fixed preset dictionary of the record's keys and common
  values (about 130 bytes for a 360-420 byte record);
* ``0x02``: the record's fields in a compact binary form (about 85 bytes): three bytes saying which
  keys of a fixed table the record has, then each value (in key order) with a type byte: the ids the
  broker makes (``app_`` / ``usr_`` / ``org_`` / ``gr_`` / ``in_`` and 16 lowercase hex digits, or the
  16 hex digits alone, or those with ``-<n>``) as their 8 bytes (the type byte names the prefix), a
  ``request_id`` that is the hex of the record's ``id`` as nothing more, times as 8-byte doubles,
  integers as varints, the strings most records share (endpoints, audiences, field names) as one
  byte, anything else as UTF-8.

:func:`pack` tries the binary form and keeps it only if :func:`unpack` gives back exactly the same
bytes (so a record of an unforeseen shape, a key not in the table, a nested object, is never changed:
it is stored in the DEFLATE form, or as the JSON when that is shorter); :func:`unpack` of any
stored body gives the canonical JSON whose hash is the leaf. The tables are frozen: a new table is a
new first byte.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from typing import Any

PLAIN = b"{"
DEFLATED = b"\x01"
FIELDS = b"\x02"
MAX_BYTES = 64 * 1024  # a packed body never unpacks to more (a record is well under 1 KiB)


class Unreadable(ValueError):
    """A stored body in none of the forms (changed)."""


# -- form 1: DEFLATE with a preset dictionary -------------------------------------------------------

# The canonical record's keys in their sorted order and the values most records share.
_ZDICT = (
    b'"corrects":"","corrects_index":,"delivered":false,'
    b'"endpoint":"POST /oauth/token (id_token)","endpoint":"GET /v1/orgs/{org_id}/members/{user_id}",'
    b'"fields":["user_id","nickname","avatar","departments","org_name"],'
    b'{"app":"app_","audience":"individual","catalog_version":"","developer":"usr_","endpoint":"GET /v1/me",'
    b'"endpoint":"userinfo","fields":["user_id","nickname","avatar"],"grant":"gr_","id":"","index":,"log":"0",'
    b'"org":null,"person":"usr_","request_id":"","time":17'
    b'{"app":"app_","audience":"organization","catalog_version":"","developer":"usr_",'
    b'"endpoint":"GET /v1/orgs/{org_id}/members","fields":["user_id","nickname"],"grant":"in_","id":"",'
    b'"index":,"log":"0","org":"org_","person":"usr_","request_id":"","time":17'
)


def _deflate(body: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    return DEFLATED + packer.compress(body) + packer.flush()


def _inflate(raw: bytes) -> bytes:
    try:
        unpacker = zlib.decompressobj(-15, _ZDICT)
        body = unpacker.decompress(raw[1:], MAX_BYTES)
    except zlib.error:
        raise Unreadable("not a DEFLATE stream") from None
    if not unpacker.eof or unpacker.unused_data or body[:1] != PLAIN:
        raise Unreadable("not a whole DEFLATE stream of a JSON object")
    return body


# -- form 2: the fields, in binary -------------------------------------------------------------------

_KEYS = ("app", "audience", "catalog_version", "corrects", "corrects_index", "delivered",
         "developer", "endpoint", "fields", "grant", "id", "index", "log", "org", "person",
         "request_id", "time")  # fmt: skip
_KEY_CODE = {k: i for i, k in enumerate(_KEYS)}
_PREFIXES = ("", "app_", "usr_", "org_", "gr_", "in_", "rq_", "dr_")
_PREFIX_CODE = {p: i for i, p in enumerate(_PREFIXES)}
_WORDS = ("individual", "organization", "GET /v1/me", "userinfo", "GET /v1/orgs/{org_id}/members",
          "GET /v1/orgs/{org_id}/members/{user_id}", "POST /oauth/token (id_token)", "user_id",
          "nickname", "avatar", "departments", "org_name", "00", "01", "02", "03", "04", "05", "06",
          "07", "08", "09", "10", "11", "12", "13", "14", "15")  # fmt: skip
_WORD_CODE = {w: i for i, w in enumerate(_WORDS)}
_ID = re.compile(r"(app_|usr_|org_|gr_|in_|rq_|dr_)?([0-9a-f]{16})(?:-([1-9][0-9]{0,8}))?")
# value types; an id's type byte also names its prefix (_ID8 + prefix code, _IDN + prefix code)
_NULL, _FALSE, _TRUE, _INT, _NEG, _FLOAT, _STR, _WORD, _LIST, _SAME_HEX = range(10)
_ID8, _IDN = 16, 24
_MASK_BYTES = 3  # one bit per key of _KEYS
_DOUBLE = struct.Struct(">d")


def _varint(n: int, out: bytearray) -> None:
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _put(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(_NULL)
    elif value is True or value is False:
        out.append(_TRUE if value else _FALSE)
    elif isinstance(value, int):
        out.append(_INT if value >= 0 else _NEG)
        _varint(abs(value), out)
    elif isinstance(value, float):
        out.append(_FLOAT)
        out += _DOUBLE.pack(value)
    elif isinstance(value, str):
        word = _WORD_CODE.get(value)
        found = _ID.fullmatch(value) if word is None else None
        if word is not None:
            out += bytes((_WORD, word))
        elif found:
            prefix, digits, n = found.group(1) or "", found.group(2), found.group(3)
            out.append((_IDN if n else _ID8) + _PREFIX_CODE[prefix])
            out += bytes.fromhex(digits)
            if n:
                _varint(int(n), out)
        else:
            data = value.encode()
            out.append(_STR)
            _varint(len(data), out)
            out += data
    elif isinstance(value, list):
        out.append(_LIST)
        _varint(len(value), out)
        for item in value:
            _put(item, out)
    else:
        raise TypeError("no binary form for this value")


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw, self.at = raw, 1

    def byte(self) -> int:
        if self.at >= len(self.raw):
            raise Unreadable("a binary body ends early")
        self.at += 1
        return self.raw[self.at - 1]

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.raw):
            raise Unreadable("a binary body ends early")
        self.at += n
        return self.raw[self.at - n : self.at]

    def varint(self) -> int:
        n, shift = 0, 0
        while True:
            byte = self.byte()
            n |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return n
            shift += 7
            if shift > 70:
                raise Unreadable("a varint too long")

    def value(self, depth: int = 0) -> Any:
        kind = self.byte()
        if kind == _NULL:
            return None
        if kind in (_FALSE, _TRUE):
            return kind == _TRUE
        if kind in (_INT, _NEG):
            n = self.varint()
            return n if kind == _INT else -n
        if kind == _FLOAT:
            return _DOUBLE.unpack(self.take(8))[0]
        if kind == _STR:
            try:
                return self.take(self.varint()).decode()
            except UnicodeDecodeError:
                raise Unreadable("a string that is not UTF-8") from None
        if _ID8 <= kind < _IDN + len(_PREFIXES):
            numbered = kind >= _IDN
            text = _PREFIXES[kind - (_IDN if numbered else _ID8)] + self.take(8).hex()
            return f"{text}-{self.varint()}" if numbered else text
        if kind == _WORD:
            word = self.byte()
            if word >= len(_WORDS):
                raise Unreadable("a word not in the table")
            return _WORDS[word]
        if kind == _LIST and depth == 0:
            return [self.value(1) for _ in range(self.varint())]
        raise Unreadable("a value of no known type")


def _same_hex(record: dict[str, Any]) -> str | None:
    """The 16 hex digits of the record's ``id`` (``<hex>-<n>``), which the gate's ``request_id`` is."""
    found = _ID.fullmatch(record.get("id") or "") if isinstance(record.get("id"), str) else None
    return found.group(2) if found and not found.group(1) and found.group(3) else None


def _fields(body: bytes) -> bytes | None:
    """The binary form of a canonical record, or None when it has none."""
    try:
        record = json.loads(body)
        if not isinstance(record, dict):
            return None
        mask = 0
        values = bytearray()
        for key in sorted(record, key=_KEY_CODE.__getitem__):
            mask |= 1 << _KEY_CODE[key]
            if key == "request_id" and record[key] == _same_hex(record):
                values.append(_SAME_HEX)
            else:
                _put(record[key], values)
    except (ValueError, KeyError, TypeError):
        return None
    return FIELDS + mask.to_bytes(_MASK_BYTES, "big") + bytes(values)


def _unfields(raw: bytes) -> bytes:
    reader = _Reader(raw)
    mask = int.from_bytes(reader.take(_MASK_BYTES), "big")
    if mask >> len(_KEYS):
        raise Unreadable("a key not in the table")
    record: dict[str, Any] = {}
    for code, key in enumerate(_KEYS):
        if mask & (1 << code):
            if key == "request_id" and reader.raw[reader.at : reader.at + 1] == bytes((_SAME_HEX,)):
                reader.at += 1
                same = _same_hex(record)
                if same is None:
                    raise Unreadable("a request id that names an id the record does not have")
                record[key] = same
            else:
                record[key] = reader.value()
    if reader.at != len(raw):
        raise Unreadable("bytes after the last field")
    return canonical(record)


def canonical(record: dict[str, Any]) -> bytes:
    """The leaf data: sorted keys, no spaces, UTF-8 (so anyone can recompute the leaf hash)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- the three forms --------------------------------------------------------------------------------


def pack(body: bytes) -> bytes:
    """What is stored for the canonical JSON ``body``: the binary form when it gives it back exactly
    and is no longer than the JSON (every record the gate writes: 76-95 bytes, where DEFLATE gives
    about 130 and costs more time than the rest of the sequencer's work on a record), else the
    shorter of DEFLATE and the JSON itself."""
    binary = _fields(body)
    if binary is not None and len(binary) <= len(body):
        try:
            if _unfields(binary) == body:
                return binary
        except Unreadable:
            pass
    return min(body, _deflate(body), key=len)


def unpack(raw: bytes) -> bytes:
    """The canonical JSON of a stored body; :class:`Unreadable` if it is in none of the forms."""
    first = raw[:1]
    if first == PLAIN:
        return raw
    if first == DEFLATED:
        return _inflate(raw)
    if first == FIELDS:
        return _unfields(raw)
    raise Unreadable("a stored body in no known form")
