"""Opaque paging cursors: the one codec every listing uses (unpadded URL-safe base64 of a text).

What the text holds is the listing's business (a sequence number, an index member, a JSON position);
each listing checks what it decodes and refuses anything it did not hand out.
"""

from __future__ import annotations

import base64
import binascii


def encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str) -> str:
    """The text of a cursor; ValueError for anything that is not one."""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a cursor") from exc
